"""A publication is lean until something wants its encoded frames; then aiortc's receiver
takes over for good, and forwarding to subscribers goes on."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.publication import Publication
from sfu.rtc import fastpath
from sfu.rtc import receiver as rtc_receiver
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv


def publication_of(server: RunningServer, client: Client) -> Publication:
    (participant,) = [p for p in server.backend.participants() if p.id == client.peer_id]
    (publication,) = participant.publications.values()
    assert isinstance(publication, Publication)
    return publication


async def decode(track: Any, n: int) -> None:
    for _ in range(n):
        frame = await recv(track, 3)
        assert (frame.width, frame.height) == (320, 240)


async def test_subscribe_hands_the_publication_to_aiortc_and_yields_encoded_frames(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("frames", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    bob = await make_client("frames", name="bob")
    remote = await bob.next_track()
    await decode(remote.track, 5)  # forwarding runs

    publication = publication_of(server, alice)
    assert publication.lean
    assert publication.layers[0].stream is not None
    # On the lean path aiortc's receiver never saw a packet.
    assert rtc_receiver.rtp_counts(publication.receiver) == (0, 0, 0)
    requested = publication.keyframes.sent

    track = publication.frames()
    assert not publication.lean

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    got: list[Any] = []
    while not any(p.is_keyframe for p in got):
        assert loop.time() < deadline, f"no keyframe in 5 s among {len(got)} packets"
        packet = await recv(track, 3)
        assert isinstance(packet, av.Packet)
        got.append(packet)
    key = next(p for p in got if p.is_keyframe)
    assert key.time_base == fractions.Fraction(1, 90000)
    assert key.pts is not None and key.size > 0
    assert bytes(key)[0] & 0x01 == 0  # a VP8 key frame's tag
    assert publication.keyframes.sent > requested, "frames() asked for no keyframe"
    # Frames go on after the keyframe, with growing timestamps.
    after = [await recv(track, 3) for _ in range(3)]
    pts = [key.pts, *(p.pts for p in after)]
    assert pts == sorted(pts) and len(set(pts)) == len(pts), pts

    # aiortc's receiver has the packets now...
    await eventually(lambda: "" if rtc_receiver.rtp_counts(publication.receiver)[0] else "none")
    # ...and bob, fed from them, keeps decoding.
    await decode(remote.track, 30)
    assert not publication.lean

    # A second consumer works too, and does not bring the lean path back.
    second = publication.frames()
    assert isinstance(await recv(second, 5), av.Packet)
    assert not publication.lean


async def test_without_frame_consumers_the_publication_stays_lean(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("lean", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    bob = await make_client("lean", name="bob")
    remote = await bob.next_track()
    await decode(remote.track, 5)

    publication = publication_of(server, alice)
    stream = publication.layers[0].stream
    assert publication.lean and stream is not None
    received = stream.received
    await decode(remote.track, 15)
    await eventually(lambda: "" if stream.received > received + 10 else "not receiving")
    assert publication.lean and publication.layers[0].stream is stream
    assert publication.packets >= stream.received
    assert rtc_receiver.rtp_counts(publication.receiver) == (0, 0, 0)

    # Our receiver reports reach alice's sender, with LSR/DLSR from her sender reports right
    # (her sender gets a round-trip time from them). aiortc's own receiver reports nothing: it
    # counted no packet.
    assert alice.pc is not None
    (sender,) = [t.sender for t in alice.pc.getTransceivers() if t.sender.track is not None]
    assert stream.ssrc == fastpath.ssrc(sender)

    async def report_with_rtt() -> str:
        stats = await sender.getStats()
        remote_inbound = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
        if not remote_inbound:
            return "no receiver report reached alice"
        (report,) = remote_inbound
        assert report.ssrc == publication.rtcp_ssrc
        if report.roundTripTime is None:
            return "no round-trip time from the reports"
        assert 0 <= report.roundTripTime < 1.0, report.roundTripTime
        assert report.packetsLost == 0
        return ""

    await eventually_async(report_with_rtt, timeout=10)
    assert publication.lean
