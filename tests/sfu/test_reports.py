"""RTCP sender reports a subscriber gets: at once when forwarding starts (lip sync needs the
first), then every second for video and every five for audio, as libwebrtc and mediasoup send."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.rtc import fastpath
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually


async def test_sender_reports_come_at_once_then_at_each_kinds_pace(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("reports", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15), AudioStreamTrack())
    bob = await make_client("reports", name="bob", decode=False)
    await bob.next_track()
    await bob.next_track()
    assert bob.pc is not None
    reports: dict[str, list[int]] = {"audio": [], "video": []}

    def counter(kind: str) -> Callable[[int, int, int], None]:
        return lambda ssrc, ntp, rtp: reports[kind].append(ntp)

    for transceiver in bob.pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is not None and receiver.track.kind in reports:
            fastpath.tap_sender_reports(receiver, counter(receiver.track.kind))

    def both() -> str:
        return "" if all(reports.values()) else f"sender reports so far: {reports}"

    await eventually(both, timeout=3)  # the audio one too, well before 5 s: the first is at once
    seen = {kind: len(ntps) for kind, ntps in reports.items()}
    await asyncio.sleep(6.0)
    video = len(reports["video"]) - seen["video"]
    audio = len(reports["audio"]) - seen["audio"]
    assert 4 <= video <= 13, reports  # 0.5-1.5 s apart: at least 4 in 6 s
    assert audio <= 2, reports  # 2.5-7.5 s apart: at most 2 in 6 s (a 1 s pace gives 4 or more)
