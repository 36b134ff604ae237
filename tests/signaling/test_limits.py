"""The hub's limits over real sockets (a fake media backend): each refuses with its HTTP status
or error code, counts in its metric, and leaves everyone else alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import WSCloseCode

from signaling import protocol as p
from signaling.config import HubConfig
from signaling.hub import Hub
from signaling.limits import Limits
from signaling.protocol import ErrorCode
from tests.signaling.served import served
from tests.signaling.test_hub import Env, FakeBackend
from tests.util import eventually

MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[MakeEnv]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def make(**limits: float) -> Env:
            backend = FakeBackend()
            hub = Hub(backend, HubConfig(limits=Limits(**limits)))  # type: ignore[arg-type]
            return Env(hub, backend, await stack.enter_async_context(served(hub)), http)

        yield make


async def test_a_socket_that_never_joins_is_told_and_closed(make_env: MakeEnv) -> None:
    env = await make_env(join_timeout=0.3)
    idle = await env.connect("idle")
    alice = await env.connect("alice")
    await alice.join()
    await asyncio.wait_for(idle._reader, 5)
    err = await idle.error(ErrorCode.JOIN_TIMEOUT)
    assert "0.3s" in err.message
    assert idle.ws.close_code == WSCloseCode.POLICY_VIOLATION
    assert env.hub.stats.refusals["join_timeout"] == 1
    await alice.sync()  # in a room: kept

    await alice.send(p.Leave())  # and once out of it, the clock runs again
    await asyncio.wait_for(alice._reader, 5)
    await alice.error(ErrorCode.JOIN_TIMEOUT)
    await eventually(lambda: "" if env.hub.session_count() == 0 else "sockets still open")


async def test_one_address_may_open_only_so_many_sockets(make_env: MakeEnv) -> None:
    env = await make_env(connections_per_ip=3)
    clients = [await env.connect(f"c{i}") for i in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await env.connect("one too many")
    assert refused.value.status == 429
    async with env.http.get(f"{env.url}/ws") as response:
        assert response.status == 429
        assert "too many connections from 127.0.0.1 (at most 3)" in await response.text()
    # A forged X-Forwarded-For changes nothing: no proxy is trusted.
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await env.http.ws_connect(f"{env.url}/ws", headers={"X-Forwarded-For": "192.0.2.9"})
    for client in clients:
        await client.sync()  # those already open are untouched
    await clients[0].close()
    await eventually(lambda: "" if env.hub.session_count() == 2 else "not closed yet")
    again = await env.connect("again")  # a slot is free once a socket closes
    await again.sync()
    assert env.hub.stats.refusals["connections_per_ip"] == 3


async def test_behind_a_trusted_proxy_each_client_has_its_own_quota() -> None:
    config = HubConfig(limits=Limits(connections_per_ip=1), trusted_proxies=("127.0.0.1",))
    async with served(Hub(FakeBackend(), config)) as base, aiohttp.ClientSession() as http:
        url = f"{base}/ws"
        a = await http.ws_connect(url, headers={"X-Forwarded-For": "192.0.2.1"})
        b = await http.ws_connect(url, headers={"X-Forwarded-For": "192.0.2.2"})
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, headers={"X-Forwarded-For": "192.0.2.1"})
        assert refused.value.status == 429
        await a.close()
        await b.close()


async def test_a_full_room_refuses_a_join_and_the_session_stays(make_env: MakeEnv) -> None:
    env = await make_env(participants=2)
    alice, bob = await env.connect("alice"), await env.connect("bob")
    await alice.join()
    await bob.join()
    carol = await env.connect("carol")
    await carol.send(p.Join(room="room1"))
    err = await carol.error(ErrorCode.ROOM_FULL)
    assert "room1" in err.message and "2" in err.message
    await alice.next(p.ParticipantJoined)
    await alice.sync()  # alice heard nothing of carol
    assert len(env.hub.roster.rooms()["room1"]) == 2
    await carol.join("room2")  # another room has space
    await bob.send(p.Leave())
    await alice.next(p.ParticipantLeft)
    await carol.send(p.Leave())
    await carol.join("room1")  # and room1 too, once bob left
    assert env.hub.stats.refusals["room_full"] == 1


async def test_sdp_over_its_limits_never_reaches_the_media_plane(make_env: MakeEnv) -> None:
    env = await make_env(sdp_chars=1000, mlines=2)
    alice = await env.connect("alice")
    await alice.join()
    await alice.send(p.Offer(sdp="v=0\r\n" + "a=x\r\n" * 250))
    assert "over the limit of 1000" in (await alice.error(ErrorCode.TOO_LARGE)).message
    three = "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 3
    await alice.send(p.Answer(sdp=three))
    assert "3 m-lines" in (await alice.error(ErrorCode.TOO_LARGE)).message
    await alice.send(p.Offer(sdp="m=audio 9\r\nm=video 9\r\n"))
    assert isinstance(await alice.next(p.ServerAnswer), p.ServerAnswer)  # two are fine
    assert env.peer(alice).calls == [("offer", "m=audio 9\r\nm=video 9\r\n")]
    assert (env.hub.stats.refusals["sdp_size"], env.hub.stats.refusals["mlines"]) == (1, 1)


async def test_a_steady_flood_gets_one_error_and_is_cut_off(make_env: MakeEnv) -> None:
    # Twice the rate, evenly spaced: every other frame passes. Each accepted frame used to reset
    # the flood, so this got one `rate_limited` per dropped frame and was never disconnected.
    env = await make_env(message_rate=20, message_burst=5, flood_seconds=1.5)
    alice, bob = await env.connect("alice"), await env.connect("bob")
    await alice.join()
    await bob.join()
    deadline = asyncio.get_running_loop().time() + 15
    i = 0
    while not alice.ws.closed and asyncio.get_running_loop().time() < deadline:
        await alice.send(p.Ping(id=i))
        i += 1
        await asyncio.sleep(1 / 40)
    await asyncio.wait_for(alice._reader, 5)
    assert alice.ws.close_code == WSCloseCode.POLICY_VIOLATION
    errors = [m for m in alice.received if isinstance(m, p.Error)]
    assert [e.code for e in errors] == [ErrorCode.RATE_LIMITED], errors
    assert env.hub.stats.refusals["messages"] == 1 and env.hub.stats.refusals["flood"] == 1
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (alice.peer_id, "disconnected")


async def test_a_flood_of_bytes_is_rate_limited(make_env: MakeEnv) -> None:
    env = await make_env(byte_rate=1000, byte_burst=300_000)  # slow enough to never refill
    alice = await env.connect("alice")
    big = json.dumps({"type": "ping", "id": 1, "pad": "x" * 100_000})
    for _ in range(4):
        await alice.send(big)
    assert isinstance(await alice.next(p.Pong), p.Pong)
    assert isinstance(await alice.next(p.Pong), p.Pong)  # 200 KB of the 300 KB burst
    err = await alice.error(ErrorCode.RATE_LIMITED)
    assert "1000 bytes per second (bursts of 300000)" in err.message
    assert env.hub.stats.refusals["bytes"] == 1


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="tracks"):
        Limits(tracks=-1)
    with pytest.raises(ValueError, match="sdp_chars"):
        Limits(sdp_chars=p.MAX_SDP_CHARS + 1)
    with pytest.raises(ValueError, match="byte_burst"):
        HubConfig(limits=Limits(byte_burst=1000))
