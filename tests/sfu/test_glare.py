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


async def test_candidates_of_an_ignored_offer_do_not_reach_ice(server: RunningServer) -> None:
    """After glare, what a trickling client sends before its answer belongs to the offer the
    server ignored: its end-of-candidates, applied, would make aiortc drop every candidate of
    the answer that follows, and ICE would never start."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from sfu.peerconfig import rtc_configuration
    from signaling.backend import CandidateInit
    from tests.sfu.test_browser_offers import FIXTURES, Recorder

    backend = server.backend
    publisher = await backend.join("trickle", "pub", Recorder())
    await publisher.offer((FIXTURES / "chrome_plain_offer.sdp").read_text())
    signals = Recorder()
    peer = await backend.join("trickle", "late", signals)
    await eventually(lambda: "" if signals.offers else "no server offer yet")

    # Our offer crossed the server's: ignored. Then the end-of-candidates of that offer.
    await peer.offer((FIXTURES / "chrome_plain_offer.sdp").read_text())
    (participant,) = [p for p in backend.participants() if p.id == "late"]
    assert participant.glare_ignored == 1
    await peer.candidate(None)

    # Answer as a trickling browser would: no candidates in the SDP, each one sent after it.
    client = RTCPeerConnection(rtc_configuration([]))
    try:
        await client.setRemoteDescription(RTCSessionDescription(signals.offers[0], "offer"))
        await client.setLocalDescription(await client.createAnswer())
        lines = client.localDescription.sdp.splitlines()
        await peer.answer(
            "\r\n".join(x for x in lines if not x.startswith(("a=candidate:", "a=end-of"))) + "\r\n"
        )
        for line in lines:
            if line.startswith("a=candidate:"):
                await peer.candidate(CandidateInit(line[2:], "0", 0))
        await peer.candidate(None)
        await eventually(
            lambda: "" if participant.pc.connectionState == "connected" else "not connected",
            timeout=10,
        )
    finally:
        await client.close()
        await peer.close()
        await publisher.close()
