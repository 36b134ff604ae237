"""What sfu.client offers bots beyond media: roles, the publisher's clock per track, and notice
when the session is lost."""

from __future__ import annotations

import time

from aiortc.mediastreams import AudioStreamTrack

from sfu.client import RemoteTrack
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv


async def test_a_recorder_is_seen_as_one(make_client: MakeClient) -> None:
    alice = await make_client("roles", name="alice")
    rec = await make_client("roles", name="rec", role="recorder")
    await eventually(lambda: "" if alice.roles.get(rec.peer_id or "") else f"{alice.roles}")
    assert alice.roles[rec.peer_id or ""] == "recorder"
    assert rec.roles == {alice.peer_id: "participant"}
    bob = await make_client("roles", name="bob")
    assert bob.roles == {alice.peer_id: "participant", rec.peer_id: "recorder"}


async def test_remote_tracks_carry_their_codec_and_the_publishers_clock(
    make_client: MakeClient,
) -> None:
    alice = await make_client("clock", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15), AudioStreamTrack())
    bob = await make_client("clock", name="bob", decode=False)
    tracks = {t.kind: t for t in (await bob.next_track(), await bob.next_track())}
    assert tracks["video"].codec == "video/VP8" and tracks["video"].clock.clock_rate == 90_000
    assert tracks["audio"].codec == "audio/opus" and tracks["audio"].clock.clock_rate == 48_000

    async def captured(remote: RemoteTrack) -> float:
        # Frames arrive within ~0.1 s of capture on loopback; the first may be a replay.
        for _ in range(200):
            packet = await recv(remote.track)
            when = remote.clock.capture_time(packet.pts)
            if when is not None and abs(time.time() - when) < 0.5:
                return when
        raise AssertionError(f"{remote.kind}: no frame's capture time near now")

    video, audio = await captured(tracks["video"]), await captured(tracks["audio"])
    # Both clocks are alice's, so frames received one after the other were captured together.
    assert abs(video - audio) < 0.5
    assert tracks["video"].clock.reports >= 1 and tracks["audio"].clock.reports >= 1
    report = tracks["audio"].clock.report
    assert report is not None and abs(report.received_at - time.time()) < 10


async def test_losing_the_server_sets_disconnected(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("lost", name="alice", reconnect_attempts=1)
    assert not alice.disconnected.is_set()
    await server.stop()
    await eventually(lambda: "" if alice.disconnected.is_set() else "still connected", timeout=10)
    reason = alice.disconnect_reason or ""
    assert reason.startswith("signaling socket closed") and "gave up after 1" in reason, reason


async def test_close_is_not_a_disconnection(make_client: MakeClient) -> None:
    alice = await make_client("lost", name="alice")
    await alice.close()
    assert not alice.disconnected.is_set() and alice.disconnect_reason is None
