"""Where ICE cannot restart in place (the server's side of the connection is gone, as aioice
leaves it when a consent check expires), the server rebuilds the participant's peer connection
and keeps its session: same peer_id, its publications under the same ids (their subscribers'
m-lines go on), what it received offered again on the new connection, nobody else told.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sfu import participant as participant_module
from sfu.client import Client, ClientState
from sfu.media import TestPatternTrack
from sfu.rtc.probe import ice_connections
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.sfu.test_metrics import scrape, value
from tests.util import eventually, recv


def messages_seen(client: Client) -> list[str]:
    """The type of every server message the client handles from now on."""
    seen: list[str] = []
    handle = client._handle

    async def recording(msg: Any) -> None:
        seen.append(type(msg).__name__)
        await handle(msg)

    client._handle = recording  # type: ignore[method-assign]
    return seen


async def close_server_side(server: RunningServer, peer_id: str | None) -> None:
    """What an expired consent does to the server's connection with this peer."""
    (participant,) = [p for p in server.backend.participants() if p.id == peer_id]
    (connection,) = ice_connections(participant.pc)
    await connection.close()


async def test_a_connection_gone_on_the_server_is_rebuilt_in_the_same_session(
    server: RunningServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    alice = await make_client("rebuild", name="alice")
    bob = await make_client("rebuild", name="bob")
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    at_alice = await alice.next_track()  # bob's video
    at_bob = await bob.next_track()  # alice's
    await recv(at_alice.track, 10)
    await recv(at_bob.track, 10)
    bob_id = bob.peer_id
    old_pc = bob.pc
    [bobs_track] = [
        pub.id
        for p in server.backend.participants()
        for pub in p.publications.values()
        if p.id == bob_id
    ]
    seen = messages_seen(alice)

    await close_server_side(server, bob.peer_id)

    await bob.wait_state(ClientState.RECONNECTING, timeout=10)
    await bob.wait_state(ClientState.CONNECTED, timeout=20)
    assert bob.peer_id == bob_id and bob.pc is not old_pc and bob.rebuilds == 1
    # bob receives alice's video again, on his new connection.
    again = await bob.next_track(timeout=15)
    assert again.peer_id == alice.peer_id
    frame = await recv(again.track, 10)
    assert (frame.width, frame.height) == (320, 240)
    # alice's track of bob's video goes on, under the same publication id: no new track.
    frames = 0
    while frames < 20:  # well past the rebuild: frames from bob's new connection
        frame = await recv(at_alice.track, 10)
        frames += 1
    assert (frame.width, frame.height) == (160, 120) and not at_alice.ended.is_set()
    [pub] = [
        pub
        for p in server.backend.participants()
        for pub in p.publications.values()
        if p.id == bob_id
    ]
    assert pub.id == bobs_track and pub.packets > 0
    # Nobody saw bob leave or come back.
    assert "ParticipantLeft" not in seen and "ParticipantJoined" not in seen
    assert "TrackUnpublished" not in seen
    assert set(alice.participants) == {bob_id}
    samples = await scrape(server)
    assert value(samples, "aiosfu_ice_restarts_total", side="server", path="rebuilt") == 1
    assert value(samples, "aiosfu_participants") == 2
    recovered = [
        r.getMessage() for r in caplog.records if "(server side, rebuilt) took" in r.getMessage()
    ]
    assert len(recovered) == 1, recovered
    assert any(
        "recovered after" in r.getMessage() and "(rebuilt)" in r.getMessage()
        for r in caplog.records
    )


async def test_rebuilds_are_bounded_then_the_participant_leaves(
    server: RunningServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A connection that keeps dying is no longer rebuilt: media_failed, out of the room, as a
    # zombie must be (issue 10's 30 s blackout).
    monkeypatch.setattr(participant_module, "REBUILD_ATTEMPTS", 1)
    alice = await make_client("rebuild2", name="alice")
    bob = await make_client("rebuild2", name="bob", reconnect=False)
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    remote = await alice.next_track()
    await recv(remote.track)
    bob_id = bob.peer_id

    await close_server_side(server, bob.peer_id)
    await eventually(lambda: "" if bob.rebuilds == 1 else "not rebuilt", timeout=10)
    await bob.wait_state(ClientState.CONNECTED, timeout=20)
    await close_server_side(server, bob.peer_id)

    await eventually(lambda: "" if bob_id not in alice.participants else "bob still listed")
    await eventually(lambda: "" if remote.ended.is_set() else "bob's track still live")
    assert any(e.code == "media_failed" for e in bob.errors)
    await bob.wait_state(ClientState.FAILED, timeout=5)
    assert {p.id for p in server.backend.participants()} == {alice.peer_id}


async def test_a_restart_impossible_in_place_rebuilds(
    server: RunningServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client asks for an ICE restart, and the server finds it impossible in place (what
    # IceRestart.begin() says when DTLS or ICE is gone, or aiortc's internals moved).
    alice = await make_client("rebuild3", name="alice")
    bob = await make_client("rebuild3", name="bob")
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    remote = await bob.next_track()
    await recv(remote.track, 10)
    (at_server,) = [p for p in server.backend.participants() if p.id == alice.peer_id]

    async def impossible() -> bool:
        return False

    monkeypatch.setattr(at_server.ice_restart, "begin", impossible)
    alice_id = alice.peer_id
    assert await alice.restart_ice(attempts=1)
    assert alice.rebuilds == 1 and alice.peer_id == alice_id and alice.ice_restarts == 0
    for _ in range(10):  # bob's track of alice's video goes on
        frame = await recv(remote.track, 10)
    assert (frame.width, frame.height) == (320, 240) and not remote.ended.is_set()
    samples = await scrape(server)
    assert value(samples, "aiosfu_ice_restarts_total", side="client", path="rebuilt") == 1
