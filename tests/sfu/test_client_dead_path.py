"""The Python client's own dead-path detection: its UDP path dies silently (iptables, in a
namespace of its own: tests/sfu/deadpath_scenario.py) while the server's detection is off; the
client notices, restarts ICE in place, and media flows again on a new pair with the same DTLS
session and peer_id, for a subscriber and for a publisher that receives nothing but RTCP. In
process: the fallback when restarts fail, and an ICE restart offer crossing the server's."""

from __future__ import annotations

import asyncio
import json

import pytest

from sfu import participant as sfu_participant
from sfu.client import ClientState
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from signaling import protocol as proto
from tests.conftest import MakeClient
from tests.scenario import run_scenario
from tests.sfu.test_ice_restart import call, kill_path
from tests.util import eventually, recv


def test_the_client_restarts_ice_when_its_path_dies() -> None:
    figures = run_scenario("tests.sfu.deadpath_scenario", timeout=180)
    print("client dead-path figures (seconds):", json.dumps(figures, indent=1))
    assert set(figures) == {"subscriber", "publisher"}


async def test_a_client_whose_restarts_fail_starts_over(
    server: RunningServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In place impossible (as when DTLS is gone): after its bounded restarts the client joins
    afresh on a new connection, and its video reaches the others again."""
    monkeypatch.setattr(sfu_participant, "DEAD_PATH_TIMEOUT", 3600.0)
    alice, bob, remote = await call(make_client, "fallback")
    assert alice.ice_restart is not None and alice.pc is not None
    was = alice.peer_id

    async def impossible() -> bool:
        return False

    monkeypatch.setattr(alice.ice_restart, "begin", impossible)
    kill_path(alice.pc)
    await eventually(lambda: "" if alice.dead_paths else "not noticed", 15)
    await eventually(lambda: "" if alice.rejoins else "no fresh join", 20)
    again = await bob.next_track(20)
    frame = await recv(again.track, 10)
    assert (frame.width, frame.height) == (320, 240)
    assert alice.peer_id != was and again.peer_id == alice.peer_id and remote.ended.is_set()
    assert alice.path_recoveries == [] and alice.state == ClientState.CONNECTED


async def test_a_restart_offer_crossing_the_servers_offer_is_rolled_back(
    server: RunningServer, make_client: MakeClient
) -> None:
    """Glare: the server ignores our ICE restart offer (its own offer crossed it); the client
    drops its offer, answers the server's, and restarts again."""
    alice, bob, remote = await call(make_client, "glare")
    assert bob.pc is not None
    send = bob._send
    dropped: list[str] = []

    async def lose_first_offer(msg: proto.Msg) -> bool:
        if isinstance(msg, proto.Offer | proto.Candidate) and len(dropped) < 2:
            dropped.append(type(msg).__name__)  # as if the server ignored it
            return True
        return await send(msg)

    bob._send = lose_first_offer  # type: ignore[method-assign]
    restarting = asyncio.ensure_future(bob.restart_ice())
    await eventually(lambda: "" if len(dropped) == 2 else "no restart offer yet")
    assert bob.pc.signalingState == "have-local-offer"
    await alice.publish(TestPatternTrack(160, 120, fps=15))  # the server offers bob a track
    second = await bob.next_track(20)
    assert await asyncio.wait_for(restarting, 30)
    assert bob.rollbacks == 1 and bob.ice_restarts == 1
    for track in (remote.track, second.track):
        await recv(track, 10)
