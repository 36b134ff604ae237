"""Glare: a client offer crosses the server's offer. The server (impolite) ignores the client's;
the Python client (polite) rolls back, answers, and offers again. Nothing is left stuck."""

from __future__ import annotations

import asyncio

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv


async def test_crossing_offers_end_with_media_both_ways(
    server: RunningServer, make_client: MakeClient
) -> None:
    bob = await make_client("glare", name="bob")
    await bob.publish(TestPatternTrack(320, 240, fps=15))

    alice = await make_client("glare", name="alice", connect=False)
    offer_arrived, release = asyncio.Event(), asyncio.Event()
    apply_server_offer = alice._on_server_offer

    async def held(sdp: str) -> None:
        offer_arrived.set()
        await release.wait()
        await apply_server_offer(sdp)

    alice._on_server_offer = held  # type: ignore[method-assign]
    await alice.connect()
    # The server offered bob's track as soon as alice joined; hold it unapplied while alice
    # offers her own track, so that the two offers cross on the wire.
    await asyncio.wait_for(offer_arrived.wait(), 10)
    publishing = asyncio.ensure_future(alice.publish(TestPatternTrack(320, 240, fps=15)))
    (on_server,) = [p for p in server.backend.participants() if p.id == alice.peer_id]
    await eventually(lambda: "" if on_server.glare_ignored == 1 else "server did not see glare")
    release.set()
    await asyncio.wait_for(publishing, 10)

    assert alice.rollbacks == 1
    assert alice.pc is not None and alice.pc.signalingState == "stable"
    assert on_server.pc.signalingState == "stable"
    from_bob = await alice.next_track()
    assert from_bob.peer_id == bob.peer_id
    assert (await recv(from_bob.track)).width == 320
    from_alice = await bob.next_track()
    assert from_alice.peer_id == alice.peer_id
    assert (await recv(from_alice.track)).width == 320
    assert not alice.errors and not bob.errors
