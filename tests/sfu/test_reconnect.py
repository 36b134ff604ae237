"""The Python client recovers from a lost socket by itself: it resumes its session (same peer_id,
media never stops, the others see nothing), or joins afresh when the server no longer knows it
(a restarted server), or ends `failed` once its retry budget is spent, leaving nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections import Counter

import pytest
from aiohttp import WSCloseCode

from sfu.backoff import Backoff
from sfu.client import Client, ClientState, StateChange
from sfu.media import TestPatternTrack
from sfu.server import RunningServer, ServerConfig
from tests.conftest import LOOPBACK, MakeClient
from tests.sfu.test_cleanup import udp_sockets
from tests.sfu.test_metrics import scrape, value
from tests.util import eventually, recv

FAST = Backoff(first=0.05, cap=0.2)
# Objects a resume cycle makes on both sides (a session, a socket, a client task's state).
# aiortc's video jitter buffer fills its ring of 128 packets (3 objects each) as the call goes
# on; one leaked stay per cycle would be thousands of objects.
SLACK = {"objects": 1000}
LIVE_TYPES = ("Session", "Membership", "WebSocketResponse", "ClientWebSocketResponse", "Future")


def session_of(server: RunningServer, client: Client) -> object:
    for session in server.hub.sessions():
        if session.membership is not None and session.membership.peer_id == client.peer_id:
            return session
    raise AssertionError(f"no session holds {client.peer_id}")


async def close_server_side(server: RunningServer, client: Client) -> None:
    session = session_of(server, client)
    await session.close(WSCloseCode.GOING_AWAY)  # type: ignore[attr-defined]


async def frames_keep_coming(track: object, until: asyncio.Event, gap: float = 2.0) -> int:
    """Frames received until `until` is set; fails if none came for `gap` seconds."""
    frames = 0
    while not until.is_set():
        await recv(track, gap)
        frames += 1
    return frames


async def test_a_socket_closed_by_the_server_is_resumed_and_media_never_stops(
    server: RunningServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = await make_client("resume", name="alice", backoff=FAST)
    bob = await make_client("resume", name="bob", backoff=FAST)
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    from_bob = await alice.next_track()
    from_alice = await bob.next_track()
    await recv(from_bob.track)
    await recv(from_alice.track)
    changes: list[StateChange] = []
    alice.on_state(changes.append)
    seen_by_bob = dict(bob.participants)
    peer_id, pc = alice.peer_id, alice.pc

    done = asyncio.Event()
    watchers = [
        asyncio.ensure_future(frames_keep_coming(from_bob.track, done)),
        asyncio.ensure_future(frames_keep_coming(from_alice.track, done)),
    ]
    await close_server_side(server, alice)
    await alice.wait_state(ClientState.RECONNECTING, timeout=5)
    await alice.wait_state(ClientState.CONNECTED, timeout=10)
    await asyncio.sleep(1.0)  # media on both sides, across and after the resume
    done.set()
    assert all(n > 0 for n in await asyncio.gather(*watchers))

    assert [c.state for c in changes] == [ClientState.RECONNECTING, ClientState.CONNECTED]
    assert alice.peer_id == peer_id and alice.pc is pc and alice.resumes == 1
    assert bob.participants == seen_by_bob  # no participant_left / participant_joined for alice
    assert not alice.errors and not bob.errors
    samples = await scrape(server)
    assert value(samples, "aiosfu_reconnects_total") == value(samples, "aiosfu_resumes_total") == 1
    # One log line for the recovery on each side, with its duration.
    logged = [r.getMessage() for r in caplog.records]
    assert len([m for m in logged if "] recovered after" in m]) == 1, logged
    assert len([m for m in logged if "] resumed after" in m]) == 1, logged


async def test_a_socket_the_server_closes_for_a_too_big_frame_is_said_and_resumed(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("too-big", name="alice", backoff=FAST)
    changes: list[StateChange] = []
    alice.on_state(changes.append)
    peer_id = alice.peer_id
    # Over 4x the frame limit: aiohttp closes the socket with 1009 without reading it.
    await alice.send_raw("x" * (4 * server.hub.config.max_message_bytes + 1))
    await alice.wait_state(ClientState.RECONNECTING, timeout=10)
    await alice.wait_state(ClientState.CONNECTED, timeout=10)
    reconnecting = changes[0]
    assert reconnecting.state == ClientState.RECONNECTING
    assert "1009" in (reconnecting.reason or ""), reconnecting.reason
    assert alice.peer_id == peer_id and alice.resumes == 1


async def test_tracks_ends_and_publish_raises_after_close(make_client: MakeClient) -> None:
    alice = await make_client("close", name="alice")
    seen: list[object] = []

    async def iterate() -> None:
        async for remote in alice.tracks():
            seen.append(remote)

    iterating = asyncio.ensure_future(iterate())
    await asyncio.sleep(0.1)
    await alice.close()
    await asyncio.wait_for(iterating, 5)  # the README's loop ends
    assert alice.state == ClientState.CLOSED
    with pytest.raises(ConnectionError):
        await alice.publish(TestPatternTrack(160, 120, fps=15))
    with pytest.raises(ConnectionError):
        await alice.next_track(timeout=1)


async def test_a_server_gone_for_good_ends_failed_with_nothing_left() -> None:
    server = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK)).start()
    baseline_tasks = len(asyncio.all_tasks())
    alice = Client(
        server.url, "gone", name="alice", ice_addresses=LOOPBACK, backoff=FAST, reconnect_attempts=3
    )
    await alice.connect()
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    changes: list[StateChange] = []
    alice.on_state(changes.append)
    ending = asyncio.ensure_future(_drain(alice))
    await server.stop()

    await alice.wait_state(ClientState.FAILED, timeout=15)
    assert [c.state for c in changes] == [ClientState.RECONNECTING, ClientState.FAILED]
    reason = alice.state_reason or ""
    assert "gave up after 3 attempts" in reason, reason
    await asyncio.wait_for(ending, 5)  # tracks() has ended
    with pytest.raises(ConnectionError):
        await alice.publish(TestPatternTrack(160, 120, fps=15))

    def settled() -> str:
        left = [t for t in asyncio.all_tasks() if not t.done()]
        if len(left) > baseline_tasks:
            return f"{len(left)} tasks, {baseline_tasks} before: {left}"
        return ""

    await eventually(settled, timeout=10)
    assert alice.pc is not None and alice.pc.connectionState == "closed"
    await alice.close()
    assert alice.state == ClientState.CLOSED


async def _drain(client: Client) -> None:
    async for _ in client.tracks():
        pass


async def test_a_restarted_server_gets_everyone_back_publishing() -> None:
    first = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK)).start()
    port = first.port
    alice = Client(first.url, "restart", name="alice", ice_addresses=LOOPBACK, backoff=FAST)
    bob = Client(first.url, "restart", name="bob", ice_addresses=LOOPBACK, backoff=FAST)
    second: RunningServer | None = None
    try:
        await alice.connect()
        await bob.connect()
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        before = await bob.next_track()
        await recv(before.track)
        old_alice = alice.peer_id
        await first.stop()
        await alice.wait_state(ClientState.RECONNECTING, timeout=5)
        config = ServerConfig(port=port, ice_addresses=LOOPBACK)
        second = await RunningServer(config).start()

        after = await bob.next_track(timeout=20)
        assert before.ended.is_set()
        assert after.peer_id == alice.peer_id != old_alice
        frame = await recv(after.track, 10)
        assert (frame.width, frame.height) == (160, 120)
        await alice.wait_state(ClientState.CONNECTED, timeout=10)
        await bob.wait_state(ClientState.CONNECTED, timeout=10)
        assert alice.rejoins == 1 and bob.rejoins == 1
        assert any(e.code == "resume_failed" for e in alice.errors)
        samples = await scrape(second)
        assert value(samples, "aiosfu_failed_resumes_total") == 2  # alice's and bob's tokens
        assert value(samples, "aiosfu_resumes_total") == 0
    finally:
        await alice.close()
        await bob.close()
        if second is not None:
            await second.stop()


async def test_fifty_resumes_leave_nothing_behind(
    server: RunningServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)  # pytest keeps every record it captures: not ours to count
    alice = await make_client("cycles", name="alice", backoff=FAST)
    bob = await make_client("cycles", name="bob", backoff=FAST)
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    remote = await bob.next_track()
    await recv(remote.track)

    async def cycle() -> None:
        await close_server_side(server, bob)
        await bob.wait_state(ClientState.RECONNECTING, timeout=5)
        await bob.wait_state(ClientState.CONNECTED, timeout=10)

    def measure() -> dict[str, int]:
        gc.collect()
        alive = Counter(type(o).__name__ for o in gc.get_objects())
        return {
            "sessions": server.hub.session_count(),
            "parked": server.hub.desk.parked(),
            "tasks": len(asyncio.all_tasks()),
            "udp sockets": udp_sockets(),
            "open files": len(os.listdir("/proc/self/fd")),  # the TCP sockets among them
            # What one stay is made of: one leaked per cycle would show here.
            **{name: alive[name] for name in LIVE_TYPES},
            # Everything else the collector tracks, but the frames nobody reads here.
            "objects": alive.total() - alive["VideoFrame"],
        }

    for _ in range(5):  # warm up (first-use allocations, aiohttp's pools)
        await cycle()
    await asyncio.sleep(0.5)
    baseline = measure()
    for _ in range(50):
        await cycle()

    def back_to_baseline() -> str:
        now = measure()
        grown = {k: (baseline[k], v) for k, v in now.items() if v > baseline[k] + SLACK.get(k, 0)}
        return f"grown (before, after): {grown}" if grown else ""

    await eventually(back_to_baseline, timeout=10, interval=0.2)
    assert bob.resumes == 55 and server.hub.stats.resumes == 55
    await recv(remote.track)  # still the same track, still flowing
    with contextlib.suppress(Exception):
        await bob.ping()
