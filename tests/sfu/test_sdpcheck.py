"""sfu.sdpcheck: what is refused before aiortc sees it, and an offer with no m-lines (valid SDP,
GStreamer's webrtcbin sends one as soon as it starts) answered, with a real offer after it.

Then real browser offers with one mutation each that a fuzzer found crashing inside aiortc
(createAnswer / setLocalDescription) once applied: the participant must refuse each with
`bad_sdp`, keep its connection as it was (the same offer unmutated is answered afterwards), and
close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from sfu.backend import SfuBackend
from sfu.config import SfuConfig
from sfu.media import TestPatternTrack
from sfu.sdpcheck import check_description, drop_empty_bundle
from sfu.server import RunningServer
from signaling.backend import NegotiationError
from tests.conftest import MakeClient
from tests.rtc.pair import new_pc
from tests.sfu.test_browser_offers import Recorder
from tests.util import recv

# As webrtcbin 1.22 offers it, before it has a transceiver.
EMPTY_OFFER = (
    "v=0\r\no=- 8099539900097342347 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "a=ice-options:trickle\r\na=group:BUNDLE\r\n"
)


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("", "does not start with v=0"),
        ("v=0\r\nthis is not an offer\r\n", "line 2 is 'this is not an offer'"),
        ("o=- 1 1 IN IP4 0.0.0.0\r\nv=0\r\n", "does not start with v=0"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nt=0 0\r\n", "has no s= line"),
    ],
)
def test_what_is_not_sdp_is_refused(sdp: str, reason: str) -> None:
    with pytest.raises(NegotiationError) as caught:
        check_description(sdp, "offer", [])
    assert caught.value.code == "bad_sdp"
    assert reason in caught.value.message


def test_an_offer_with_no_m_lines_is_valid_until_m_lines_were_negotiated() -> None:
    assert check_description(EMPTY_OFFER, "offer", []).media == []
    with pytest.raises(NegotiationError, match="must keep the 1 already negotiated"):
        check_description(EMPTY_OFFER, "offer", [("0", "video")])


def test_an_empty_bundle_group_is_left_out() -> None:
    answer = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE \r\na=x\r\n"
    assert drop_empty_bundle(answer) == "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=x\r\n"
    bundled = "v=0\r\na=group:BUNDLE 0 1\r\n"
    assert drop_empty_bundle(bundled) == bundled


async def receive(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of this type (others, like participant_joined, are skipped)."""
    while True:
        msg: dict[str, Any] = await asyncio.wait_for(ws.receive_json(), 10)
        if msg["type"] == kind:
            return msg
        assert msg["type"] != "error", msg


async def test_an_empty_offer_is_answered_and_the_real_offer_then_publishes(
    server: RunningServer, make_client: MakeClient
) -> None:
    viewer = await make_client("empty", name="viewer")
    pc = new_pc()
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url) as ws:
        try:
            await ws.send_json({"type": "join", "room": "empty", "name": "gst-like"})
            await receive(ws, "welcome")
            await ws.send_json({"type": "offer", "sdp": EMPTY_OFFER})
            answer = (await receive(ws, "answer"))["sdp"]
            assert (await receive(ws, "candidate"))["candidate"] is None
            check_description(answer, "answer", [])  # well-formed
            assert aiortc_sdp.SessionDescription.parse(answer).media == []
            assert "a=group" not in answer

            pc.addTransceiver(TestPatternTrack(320, 240, fps=15), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
            answer = (await receive(ws, "answer"))["sdp"]
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

            remote = await viewer.next_track(timeout=10)
            assert (await recv(remote.track, 15)).width == 320
            assert not viewer.errors
        finally:
            await pc.close()


FIXTURES = Path(__file__).parent.parent / "fixtures"
CHROME = (FIXTURES / "chrome_plain_offer.sdp").read_text()


def _video_section(sdp: str) -> tuple[str, str]:
    """The offer before its video m-line, and from it on."""
    head, _, video = sdp.partition("m=video")
    return head, "m=video" + video


def duplicate_mid(sdp: str) -> str:
    # Two audio m-lines with one mid bind to one transceiver, and setLocalDescription finds none
    # for the second ("'NoneType' object has no attribute '_set_mid'").
    head, video = _video_section(sdp)
    session, _, audio = head.partition("m=audio")
    return session + 2 * ("m=audio" + audio) + video


def mid_of_another_kind(sdp: str) -> str:
    # An audio and a video m-line with one mid: the answer's m-lines then do not match the offer
    # ("Media sections in answer do not match offer", raised by setLocalDescription).
    head, video = _video_section(sdp.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0"))
    return head + video.replace("a=mid:1", "a=mid:0")


def no_direction(sdp: str) -> str:
    # createAnswer looks the missing direction up in aiortc's list ("None is not in list").
    head, video = _video_section(sdp)
    return head + video.replace("a=sendrecv\r\n", "").replace("a=sendrecv\n", "")


def bundle_names_a_missing_mid(sdp: str) -> str:
    # The group's first mid is the transport every m-line moves to: none, so every transceiver
    # is left without one (and even close() fails).
    return sdp.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 7 0 1")


MUTATIONS: list[tuple[Callable[[str], str], str]] = [
    (duplicate_mid, "repeats mid"),
    (mid_of_another_kind, "repeats mid"),
    (no_direction, "no direction"),
    (bundle_names_a_missing_mid, "names mids that no m-line has"),
]


@pytest.mark.parametrize(("mutate", "reason"), MUTATIONS, ids=[m[0].__name__ for m in MUTATIONS])
async def test_offer_aiortc_cannot_answer_is_bad_sdp(
    mutate: Callable[[str], str], reason: str
) -> None:
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    signals = Recorder()
    peer = await backend.join("sdpcheck", "p1", signals)
    try:
        with pytest.raises(NegotiationError) as refused:
            await peer.offer(mutate(CHROME))
        assert refused.value.code == "bad_sdp"
        assert reason in refused.value.message
        assert signals.answers == []
        await peer.offer(CHROME)  # nothing was half-applied
        assert len(signals.answers) == 1
    finally:
        await peer.close()
    assert backend.rooms == {}


def test_the_unmutated_offer_passes() -> None:
    description = check_description(CHROME, "offer", [])
    assert [m.rtp.muxId for m in description.media] == ["0", "1"]
    with pytest.raises(NegotiationError) as refused:
        check_description(CHROME, "offer", [], max_tracks=1)
    assert refused.value.code == "too_many_tracks"


async def test_an_empty_offer_crossing_the_servers_first_is_answered_and_the_offer_resent(
    server: RunningServer, make_client: MakeClient
) -> None:
    """webrtcbin offers no m-lines at start and cannot roll back: in a room where someone
    publishes, that offer crosses the server's first one, which webrtcbin then refuses."""
    bob = await make_client("glare-empty", name="bob")
    await bob.publish(TestPatternTrack(320, 240, fps=15))
    pc = new_pc()
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url) as ws:
        try:
            await ws.send_json({"type": "join", "room": "glare-empty", "name": "gst-like"})
            first = (await receive(ws, "offer"))["sdp"]  # not answered: it crosses ours
            await ws.send_json({"type": "offer", "sdp": EMPTY_OFFER})
            answer = (await receive(ws, "answer"))["sdp"]
            assert aiortc_sdp.SessionDescription.parse(answer).media == []
            check_description(answer, "answer", [])
            assert (await receive(ws, "candidate"))["candidate"] is None
            again = (await receive(ws, "offer"))["sdp"]
            assert again == first

            await pc.setRemoteDescription(RTCSessionDescription(sdp=again, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await ws.send_json({"type": "answer", "sdp": pc.localDescription.sdp})
            (transceiver,) = pc.getTransceivers()
            assert (await recv(transceiver.receiver.track, 15)).width == 320
            (on_server,) = [p for p in server.backend.participants() if p.id != bob.peer_id]
            assert on_server.pc.signalingState == "stable"
        finally:
            await pc.close()
