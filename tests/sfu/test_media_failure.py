"""A media connection that ends on the server's side leaves no zombie participant.

aioice ends a connection whose consent expired (after ~30 s without answers) by closing it, and
aiortc then closes the peer connection: `closed`, not `failed`. Here the server's aioice
connection of one participant is closed the same way, at once. The server first rebuilds such a
connection in the same session (tests/sfu/test_rebuild.py); here it has no rebuild left
(REBUILD_ATTEMPTS 0), which is how a connection that keeps dying ends.
"""

from __future__ import annotations

import pytest
from aioice import Connection

from sfu import participant as participant_module
from sfu.client import ClientState
from sfu.media import TestPatternTrack
from sfu.rtc.probe import ice_connections
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.sfu.test_metrics import scrape, value
from tests.util import eventually, recv


def server_connection(server: RunningServer, peer_id: str | None) -> Connection:
    (participant,) = [p for p in server.backend.participants() if p.id == peer_id]
    (connection,) = ice_connections(participant.pc)
    return connection


@pytest.mark.parametrize("reconnect", [False, True], ids=["stays-out", "rejoins"])
async def test_consent_expiry_on_the_server_takes_the_participant_out(
    server: RunningServer,
    make_client: MakeClient,
    reconnect: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(participant_module, "REBUILD_ATTEMPTS", 0)
    alice = await make_client("zombie", name="alice")
    bob = await make_client("zombie", name="bob", reconnect=reconnect)
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    remote = await alice.next_track()
    await recv(remote.track)
    old_bob = bob.peer_id

    await server_connection(server, old_bob).close()  # what an expired consent does

    await eventually(lambda: "" if old_bob not in alice.participants else "bob still listed")
    await eventually(lambda: "" if remote.ended.is_set() else "bob's track still live")
    assert any(e.code == "media_failed" for e in bob.errors)
    assert value(await scrape(server), "aiosfu_ice_failures_total") == 1
    ids = {p.id for p in server.backend.participants()}
    assert old_bob not in ids
    if not reconnect:
        assert ids == {alice.peer_id}
        await bob.wait_state(ClientState.FAILED, timeout=5)
        assert "media failed" in (bob.state_reason or "")
        return
    # The client joins again by itself, under a new peer_id, and publishes again.
    again = await alice.next_track(timeout=15)
    assert again.peer_id == bob.peer_id != old_bob
    frame = await recv(again.track, 10)
    assert (frame.width, frame.height) == (160, 120)
    await bob.wait_state(ClientState.CONNECTED, timeout=10)
