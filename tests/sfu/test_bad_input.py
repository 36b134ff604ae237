"""Bad input against the real server: each class gets its error code, the sender's session stays
usable, and the other participants' media and rosters do not change."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.rtc.candidates import selected_pair_addresses
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv

BAD_SDP = "v=0\r\nthis is not an offer\r\n"
NO_ICE_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
    "a=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
)

CASES: list[tuple[str | bytes, str]] = [
    ("{not json", "bad_json"),
    ('{"room": "x"}', "bad_message"),  # no type
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "join", "room": 7}', "bad_message"),  # wrong field type (and already joined)
    ('{"type": "offer"}', "bad_message"),  # missing field
    (json.dumps({"type": "ping", "id": "x" * 300_000}), "too_large"),
    (b'{"type": "ping"}', "bad_message"),  # binary frame
    ('{"type": "join", "room": "elsewhere"}', "already_joined"),
    ('{"type": "answer", "sdp": "v=0"}', "no_offer_pending"),
    (json.dumps({"type": "offer", "sdp": BAD_SDP}), "bad_sdp"),
    (json.dumps({"type": "offer", "sdp": NO_ICE_SDP}), "bad_sdp"),
    (
        json.dumps({"type": "candidate", "candidate": {"candidate": "candidate:x", "sdpMid": "0"}}),
        "bad_candidate",
    ),
]


async def test_each_bad_input_gets_its_code_and_harms_no_one(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("bad", name="alice")
    bob = await make_client("bad", name="bob")
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    from_alice = await bob.next_track()
    await recv(from_alice.track)
    mallory = await make_client("bad", name="mallory")
    await eventually(lambda: "" if len(bob.participants) == 2 else f"bob sees {bob.participants}")
    rosters = (dict(alice.participants), dict(bob.participants))

    for frame, code in CASES:
        before = len(mallory.errors)
        await mallory.send_raw(frame)

        def replied(before: int = before) -> str:
            return "" if len(mallory.errors) > before else "no error yet"

        await eventually(replied)
        assert mallory.errors[-1].code == code, (frame[:60], mallory.errors[-1])
        assert mallory.errors[-1].message
        assert await mallory.ping() < 5  # the session is still usable

    # Nobody else saw anything: no errors, same rosters, alice's video still reaches bob.
    assert not alice.errors and not bob.errors
    assert (alice.participants, bob.participants) == rosters
    for _ in range(5):
        await recv(from_alice.track)
    assert not from_alice.ended.is_set()
    assert len(server.backend.participants()) == 3


async def test_messages_before_join_are_refused(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(server.url) as ws:
        for msg in ({"type": "offer", "sdp": "v=0"}, {"type": "leave"}):
            await ws.send_json(msg)
            reply = await asyncio.wait_for(ws.receive_json(), 5)
            assert (reply["type"], reply["code"]) == ("error", "not_joined")
        await ws.send_json({"type": "ping", "id": 1})
        assert await asyncio.wait_for(ws.receive_json(), 5) == {"type": "pong", "id": 1}


@pytest.mark.server_config(resume_grace=0.5)
async def test_a_closed_socket_removes_the_participant_after_the_grace_period(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("drop", name="alice")
    bob = Client(server.url, "drop", name="bob", ice_addresses=["127.0.0.1"], reconnect=False)
    await bob.connect()
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    from_bob = await alice.next_track()
    assert bob._ws is not None
    await bob._ws.close()  # no leave: the socket just goes away
    await eventually(lambda: "" if bob.peer_id not in alice.participants else "bob still listed")
    await asyncio.wait_for(from_bob.ended.wait(), 10)
    await eventually(lambda: "" if len(server.backend.participants()) == 1 else "not removed")
    await bob.close()


async def test_stray_datagrams_on_the_media_port_end_no_connection(
    server: RunningServer, make_client: MakeClient
) -> None:
    # Anyone who can reach the server's ICE port can send it anything. aiortc ends a connection
    # (its DTLS task dies) on an empty datagram or an SRTP one larger than its buffer: the
    # server's ingress drops both, and forged SRTP fails authentication as it should.
    alice = await make_client("stray", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=30))
    bob = await make_client("stray", name="bob")
    remote = await bob.next_track()
    await recv(remote.track, 5)

    for participant in server.backend.participants():
        addresses = selected_pair_addresses(participant.pc)
        assert addresses is not None
        host, port = addresses.local
        with socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
        ) as s:
            for datagram in (b"", b"\x80\x60" + bytes(1600), b"\x80\xc8" + bytes(1600)):
                s.sendto(datagram, (host, port))
            s.sendto(b"\x80\x60" + bytes(200), (host, port))  # SRTP that fails authentication
    await asyncio.sleep(0.5)

    for participant in server.backend.participants():
        assert participant.pc.connectionState == "connected", participant.id
        (ingress,) = participant._ingresses
        assert ingress.dropped >= 3, ingress.dropped
    frame = await recv(remote.track, 5)  # media still flows, end to end
    assert (frame.width, frame.height) == (160, 120)
