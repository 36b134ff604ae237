"""The Python client notices a dead path by itself, in a network namespace of its own: run by
tests/sfu/test_client_dead_path.py as `unshare --net -- python -m tests.sfu.deadpath_scenario
PARENT_NS`; raises on what a user would see go wrong and prints its figures as JSON (last line).

A server in this process with its own dead-path detection off (sfu.participant.DEAD_PATH_TIMEOUT,
as tests/browser/icerestart_scenario.py turns it off for the page); Python clients alice
(publishes a test pattern, receives nothing) and bob (receives it, publishes nothing). The
current ICE port of bob, then of alice, is blocked for good with iptables (both ways, silently:
the WebSocket lives on): each client must notice the silence, restart ICE in place and get its
media flowing again on a new pair, with the same DTLS session and the same peer_id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from sfu import participant as sfu_participant
from sfu.client import Client, RemoteTrack
from sfu.media import TestPatternTrack
from sfu.rtc import probe
from sfu.rtc.candidates import selected_pair_addresses
from sfu.rtc.icerestart import dtls_transport
from sfu.server import RunningServer
from tests.conftest import LOOPBACK, serving
from tests.netfault import block_port, enter_own_namespace
from tests.util import eventually

ROOM = "deadpath"


class Frames:
    """Arrival times of the decoded frames bob gets from alice, on her track and on any that
    replaces it (a fresh join after a failed recovery brings a new one)."""

    def __init__(self, bob: Client, first: RemoteTrack) -> None:
        self.times: list[float] = []
        self.size: tuple[int, int] | None = None
        self.tracks = 1
        self._tasks = [asyncio.ensure_future(self._run(first))]
        bob.on_track(self._new)

    def _new(self, remote: RemoteTrack) -> None:
        self.tracks += 1
        self._tasks.append(asyncio.ensure_future(self._run(remote)))

    async def _run(self, remote: RemoteTrack) -> None:
        while not remote.ended.is_set():
            frame: Any = await remote.track.recv()
            self.size = (frame.width, frame.height)
            self.times.append(time.monotonic())

    def after(self, moment: float) -> int:
        return sum(1 for t in self.times if t > moment)

    def first_after(self, moment: float) -> float | None:
        """Seconds from `moment` to the first frame after it (None: none yet)."""
        return next((t - moment for t in self.times if t > moment), None)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


@contextlib.asynccontextmanager
async def call(server: RunningServer) -> AsyncIterator[tuple[Client, Client, Frames]]:
    """alice publishes a 320x240 test pattern, bob receives it (frames flowing)."""
    alice = Client(server.url, ROOM, name="alice", ice_addresses=LOOPBACK)
    bob = Client(server.url, ROOM, name="bob", ice_addresses=LOOPBACK)
    frames: Frames | None = None
    try:
        await alice.connect()
        await alice.publish(TestPatternTrack(320, 240, fps=15))
        await bob.connect()
        frames = Frames(bob, await bob.next_track(20))
        await eventually(lambda: "" if len(frames.times) > 5 else "bob: no frames", 20)
        yield alice, bob, frames
    finally:
        if frames is not None:
            frames.close()
        await bob.close()
        await alice.close()


async def kill_path(victim: Client, frames: Frames, server: Any) -> dict[str, float]:
    """Block the victim's current ICE port for good; wait for it to recover by itself."""
    pc = victim.pc
    assert pc is not None
    pair, dtls = selected_pair_addresses(pc), dtls_transport(pc)
    assert pair is not None and dtls is not None
    srtp, peer_id, restarts = probe.srtp_sessions(dtls), victim.peer_id, victim.ice_restarts
    counted = server.backend.totals.ice_restarts[("client", "in_place")]
    block_port(pair.local[1])
    blocked = time.monotonic()
    await eventually(lambda: "" if victim.dead_paths else f"{victim.name}: not noticed", 15)
    noticed = time.monotonic()
    await eventually(
        lambda: "" if victim.path_recoveries else f"{victim.name}: not recovered", 40, 0.02
    )
    await eventually(lambda: "" if frames.after(noticed) >= 5 else "no frames at bob", 15, 0.02)
    first = next(t for t in frames.times if t > noticed)
    after = selected_pair_addresses(pc)
    assert after is not None and after.local != pair.local, "a new pair, on a new port"
    assert victim.pc is pc and dtls_transport(pc) is dtls and dtls.state == "connected"
    assert probe.srtp_sessions(dtls) == srtp, "the same DTLS session, keyed once"
    assert victim.peer_id == peer_id and victim.ice_restarts == restarts + 1
    assert victim.dead_paths == 1 and victim.rejoins == 0, (victim.dead_paths, victim.rejoins)
    totals = server.backend.totals
    assert totals.ice_restarts[("client", "in_place")] == counted + 1, totals.ice_restarts
    assert totals.dead_paths == 0, "the server's own detection is off"
    return {
        "noticed_after": noticed - blocked,
        "noticed_to_new_pair": victim.path_recoveries[0],
        "noticed_to_frame_at_bob": first - noticed,
    }


async def scenario() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    sfu_participant.DEAD_PATH_TIMEOUT = 3600.0  # the server's own detection off
    async with serving() as server, call(server) as (alice, bob, frames):
        figures["subscriber"] = await kill_path(bob, frames, server)
        figures["publisher"] = await kill_path(alice, frames, server)
        assert frames.size == (320, 240), frames.size
        assert frames.tracks == 1 and len(bob.remote_tracks) == 1, "no new track"
        assert {p.id for p in server.backend.participants()} == {alice.peer_id, bob.peer_id}
    return figures


def main(parent_namespace: str) -> None:
    enter_own_namespace(parent_namespace)
    print(json.dumps(asyncio.run(scenario())))


if __name__ == "__main__":
    main(sys.argv[1])
