"""Hook: sfu.rtc.transportcc (transport-cc accepted on the m-lines a client sends on)."""

from __future__ import annotations

from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import SessionDescription

from sfu.media import TestPatternTrack
from sfu.rtc.transportcc import accept_transport_cc
from sfu.rtc.twcc import URI
from tests.rtc.pair import new_pc

FIXTURES = Path(__file__).parent.parent / "fixtures"


async def answer_to(pc: RTCPeerConnection, offer: str) -> tuple[int | None, SessionDescription]:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    accepted = accept_transport_cc(pc)
    await pc.setLocalDescription(await pc.createAnswer())
    return accepted, SessionDescription.parse(pc.localDescription.sdp)


async def test_a_browser_offer_gets_transport_cc_with_its_own_id() -> None:
    for browser, ext_id in (("chrome", 3), ("firefox", 7)):
        pc = new_pc()
        try:
            offer = (FIXTURES / f"{browser}_plain_offer.sdp").read_text()
            accepted, answer = await answer_to(pc, offer)
            assert accepted == ext_id, browser
            for media in answer.media:
                assert (ext_id, URI) in [(e.id, e.uri) for e in media.rtp.headerExtensions]
                by_name = {c.name: c for c in media.rtp.codecs}
                main = by_name["opus" if media.kind == "audio" else "VP8"]
                assert "transport-cc" in [f.type for f in main.rtcpFeedback], browser
                if "rtx" in by_name:
                    assert by_name["rtx"].rtcpFeedback == []
        finally:
            await pc.close()


async def test_an_offer_without_it_is_answered_as_before() -> None:
    offerer, pc = new_pc(), new_pc()
    try:
        offerer.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
        await offerer.setLocalDescription(await offerer.createOffer())
        accepted, answer = await answer_to(pc, offerer.localDescription.sdp)
        assert accepted is None
        assert URI not in [e.uri for m in answer.media for e in m.rtp.headerExtensions]
    finally:
        await offerer.close()
        await pc.close()


async def test_not_on_m_lines_the_client_only_receives_on() -> None:
    offer = (FIXTURES / "chrome_plain_offer.sdp").read_text().replace("a=sendrecv", "a=recvonly")
    pc = new_pc()
    try:
        accepted, answer = await answer_to(pc, offer)
        assert accepted is None
        assert URI not in [e.uri for m in answer.media for e in m.rtp.headerExtensions]
    finally:
        await pc.close()
