"""SIGTERM drains a real server process: every client is told `going_away` (reason, retry hint),
media flows on through the grace, a new join is refused, the rest are closed, the process exits
0; clients wait the hint and come back as fresh sessions to the server started in its place."""

from __future__ import annotations

import signal
import time

import pytest

from loadtest.serverproc import ServerProcess
from sfu.client import Client, ClientState, StateChange
from sfu.media import TestPatternTrack
from sfu.server import RunningServer, ServerConfig
from tests.conftest import LOOPBACK
from tests.util import eventually, recv

GRACE, RETRY_AFTER = 3.0, 2.0


async def test_sigterm_tells_everyone_refuses_joins_and_exits_0() -> None:
    args = ["--drain-grace", str(GRACE), "--drain-retry-after", str(RETRY_AFTER)]
    first = await ServerProcess(extra_args=args).start()
    second: ServerProcess | None = None
    alice = Client(first.url, "drain", name="alice", ice_addresses=LOOPBACK)
    bob = Client(first.url, "drain", name="bob", ice_addresses=LOOPBACK)
    try:
        await alice.connect()
        await bob.connect()
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        remote = await bob.next_track()
        await recv(remote.track)
        old_alice = alice.peer_id

        first.send_signal(signal.SIGTERM)

        def told() -> str:
            return "" if alice.going_away and bob.going_away else "not told yet"

        await eventually(told, timeout=10)
        for client in (alice, bob):
            assert client.going_away is not None
            assert client.going_away.retry_after == RETRY_AFTER
            assert "shutting down" in client.going_away.reason
        assert alice.state == bob.state == ClientState.CONNECTED
        await recv(remote.track, 5)  # media goes on through the grace

        carol = Client(first.url, "drain", name="carol", ice_addresses=LOOPBACK)
        with pytest.raises(ConnectionError, match="going away"):
            await carol.connect()
        assert carol.going_away is not None and carol.state == ClientState.FAILED
        await carol.close()

        await eventually(lambda: "" if first.returncode is not None else "running", timeout=20)
        assert first.returncode == 0, first.output()[-3000:]
        await bob.wait_state(ClientState.RECONNECTING, timeout=5)
        assert "going away" in (bob.state_reason or "")
        second = await ServerProcess(port=first.port).start()
        back = await bob.next_track(timeout=30)  # alice, as a fresh session, publishing again
        assert back.peer_id == alice.peer_id != old_alice
        await recv(back.track, 10)
        for client in (alice, bob):
            await client.wait_state(ClientState.CONNECTED, timeout=15)
            # Straight to a fresh join: no resume_failed first.
            assert client.rejoins == 1 and not client.errors
    finally:
        await alice.close()
        await bob.close()
        await first.stop()
        if second is not None:
            await second.stop()
    output = first.output()
    assert "going away" in output and "stopped" in output


async def test_clients_come_back_no_sooner_than_the_hint() -> None:
    config = ServerConfig(port=0, ice_addresses=LOOPBACK, drain_grace=0.5, drain_retry_after=1.5)
    first = await RunningServer(config).start()
    alice = Client(first.url, "hint", name="alice", ice_addresses=LOOPBACK)
    second: RunningServer | None = None
    try:
        await alice.connect()
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        changes: list[tuple[float, StateChange]] = []
        alice.on_state(lambda change: changes.append((time.monotonic(), change)))
        await first.drain()
        await first.stop()
        # Up again at once: only the hint keeps alice from coming back within the backoff's
        # first 0.25 s.
        config.port = first.port
        second = await RunningServer(config).start()
        await alice.wait_state(ClientState.CONNECTED, timeout=15)
        (lost, reconnecting), (back, connected) = changes
        assert (reconnecting.state, connected.state) == (
            ClientState.RECONNECTING,
            ClientState.CONNECTED,
        )
        assert back - lost >= 1.5, f"back after {back - lost:.2f}s"
        assert alice.rejoins == 1 and alice.reconnects == 1 and not alice.errors
    finally:
        await alice.close()
        await first.stop()
        if second is not None:
            await second.stop()
