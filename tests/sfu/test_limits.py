"""Limits against the real server (hub, media plane, aiortc clients): each refusal is what a user
would see (an HTTP status, an error code), and the call of those within their limits goes on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import WSCloseCode

from sfu.client import Client, ClientError
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from signaling.limits import Limits
from tests.conftest import LOOPBACK, serving
from tests.util import eventually, recv

LIMITS = Limits(
    connections_per_ip=4,
    participants=2,
    join_timeout=1.0,
    tracks=1,
    candidates=8,
    sdp_chars=20_000,  # a real offer of one track is a few KB
)


@pytest.fixture
async def limited() -> AsyncIterator[RunningServer]:
    async with serving(limits=LIMITS) as running:
        yield running


async def _call(server: RunningServer) -> tuple[Client, Client, object]:
    """Alice publishes, bob receives her video: the call the refusals must not disturb."""
    alice = Client(server.url, "limits", name="alice", ice_addresses=LOOPBACK)
    bob = Client(server.url, "limits", name="bob", ice_addresses=LOOPBACK)
    await alice.connect()
    await bob.connect()
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    remote = await bob.next_track()
    await recv(remote.track)
    return alice, bob, remote.track


async def test_room_full_and_too_many_tracks(limited: RunningServer) -> None:
    alice, bob, track = await _call(limited)
    carol = Client(limited.url, "limits", name="carol", ice_addresses=LOOPBACK)
    try:
        with pytest.raises(ClientError) as refused:
            await carol.connect()
        assert refused.value.code == "room_full"
        assert "2 participants at most" in refused.value.message

        with pytest.raises(ClientError) as too_many:  # alice publishes one track already
            await alice.publish(TestPatternTrack(160, 120, fps=15), timeout=10)
        assert too_many.value.code == "too_many_tracks"
        frame = await recv(track)  # bob still gets alice's first track
        assert (frame.width, frame.height) == (160, 120)
        assert set(bob.participants) == {alice.peer_id}
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_a_too_big_offer_is_refused_and_harms_no_one(limited: RunningServer) -> None:
    alice, bob, track = await _call(limited)
    try:
        big = "v=0\r\n" + "a=x-padding:" + "p" * 30_000 + "\r\n"
        await alice.send_raw(json.dumps({"type": "offer", "sdp": big}))

        def refused() -> str:
            return "" if alice.errors else "no error yet"

        await eventually(refused)
        assert alice.errors[-1].code == "too_large"
        assert "over the limit of 20000" in alice.errors[-1].message
        assert await alice.ping() < 5  # the session is kept
        await recv(track)
        assert not bob.errors
    finally:
        await alice.close()
        await bob.close()


async def test_sockets_per_address_and_sockets_that_never_join(limited: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        idle = [await http.ws_connect(limited.url) for _ in range(4)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(limited.url)
        assert refused.value.status == 429
        for ws in idle:  # none joined within the timeout: each is told why and closed
            msg = await asyncio.wait_for(ws.receive_json(), 5)
            assert (msg["type"], msg["code"]) == ("error", "join_timeout")
            closing = await asyncio.wait_for(ws.receive(), 5)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert closing.data == WSCloseCode.POLICY_VIOLATION
        # Their slots are free again.
        alice = Client(limited.url, "after", name="alice", ice_addresses=LOOPBACK)
        await alice.connect()
        await alice.close()


async def test_candidates_before_any_offer_are_bounded(limited: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(limited.url) as ws:
        await ws.send_json({"type": "join", "room": "cands"})
        assert (await ws.receive_json())["type"] == "welcome"
        for port in range(1, 13):  # parse, but point nowhere; no offer ever comes
            line = f"candidate:1 1 udp 1 192.0.2.1 {port} typ host"
            await ws.send_json({"type": "candidate", "candidate": {"candidate": line}})
        await ws.send_json({"type": "ping", "id": 1})
        replies = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(5)]
        codes = [r.get("code") for r in replies[:4]]
        assert codes == ["too_many_candidates"] * 4 and replies[4]["type"] == "pong"
        (participant,) = limited.backend.participants()
        assert len(participant._early_candidates) == 8
