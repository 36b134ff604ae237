"""loadtest.stats: the one percentile and the one stream counter, and that every harness uses them.

Before the harnesses were one, `aiosfu loadtest` interpolated between ranks and the benchmarks
took the nearest rank: their join figures did not compare. Both now take the nearest rank.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, cast

import av
import pytest
from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError

from loadtest.forwarding import Subscriber, join_figures
from loadtest.loadreport import ServerFigures, build_report
from loadtest.options import LoadConfig
from loadtest.peers import PeerResult, WorkerOutcome
from loadtest.stats import Counts, StreamStats, percentile, summary
from tests.util import eventually

NO_RECEIVER = cast(RTCRtpReceiver, None)  # counts() is not called here: on_frame() is the subject


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([7], 0, 7),
        ([7], 99, 7),
        ([4, 1, 3, 2], 0, 1),  # the smallest: rank 1 at least
        ([4, 1, 3, 2], 25, 1),
        ([4, 1, 3, 2], 50, 2),  # interpolated: 2.5
        ([4, 1, 3, 2], 51, 3),
        ([4, 1, 3, 2], 75, 3),
        ([4, 1, 3, 2], 100, 4),
        ([1, 2, 3, 4, 5], 95, 5),  # interpolated: 4.8
        ([1, 2, 3, 4, 5], 80, 4),
        (list(range(1, 11)), 95, 10),  # 10 values: p95 is the largest
        (list(range(1, 101)), 95, 95),
        (list(range(1, 101)), 99, 99),
        ([0.5, 0.1, 0.1, 0.9], 50, 0.1),  # duplicates
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected
    assert percentile(values, q) in values, "always a value some peer measured"


def test_percentile_of_nothing_is_nan_and_summary_says_null() -> None:
    assert math.isnan(percentile([], 50))
    assert summary([]) == {
        "n": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "min": None,
        "max": None,
        "mean": None,
    }
    assert summary([0.25, 0.1, 0.2, 0.3], 1000) == {
        "n": 4,
        "p50": 200.0,
        "p95": 300.0,
        "p99": 300.0,
        "min": 100.0,
        "max": 300.0,
        "mean": 212.5,
    }


def test_the_load_test_reports_nearest_rank_join_times() -> None:
    peers = [
        PeerResult(i, "room", "subscriber", f"sub{i}", True, join_time=t)
        for i, t in enumerate([0.4, 0.1, 0.3, 0.2])
    ]
    report = build_report(
        LoadConfig(), [WorkerOutcome(0, 10.0, peers)], ServerFigures(), url="-", window=5, env={}
    )
    assert report["join_time_ms"]["p50"] == 200.0, "interpolated would say 250"
    assert report["join_time_ms"]["p95"] == 400.0


async def test_the_benchmarks_report_nearest_rank_join_times() -> None:
    """measure_window's join figures, for aiosfu's subscribers and Janus's alike."""

    async def leave() -> None:
        pass

    subscribers = []
    for i, took in enumerate([0.4, 0.1, 0.3, 0.2, None]):  # the last: no keyframe yet
        stats = StreamStats("video", NO_RECEIVER, _Packets())
        if took is not None:
            stats.on_frame(packet(0, keyframe=True), 100.0 + took)
        subscribers.append(Subscriber(f"sub{i}", stats, 100.0, leave))
    p50, p95, longest = join_figures(subscribers)
    assert (p50, p95, longest) == pytest.approx((0.2, 0.4, 0.4)), "interpolated p50: 0.25"
    assert all(math.isnan(x) for x in join_figures(subscribers[4:]))


class _Packets(MediaStreamTrack):
    """Encoded frames from a list; then the end of the track, or (`ends=False`) silence."""

    kind = "video"

    def __init__(self, packets: list[Any] | None = None, *, ends: bool = True) -> None:
        super().__init__()
        self.packets = packets or []
        self.ends = ends

    async def recv(self) -> Any:
        if not self.packets:
            if self.ends:
                raise MediaStreamError
            await asyncio.Event().wait()
        await asyncio.sleep(0)
        return self.packets.pop(0)


def packet(pts: int, keyframe: bool = False, size: int = 1000) -> Any:
    """An encoded frame as sfu.rtc.receiver hands them out (pts: the RTP timestamp)."""
    p = av.Packet(bytes(size))
    p.pts, p.is_keyframe = pts, keyframe
    return p


def test_a_video_stream_is_counted_frame_by_frame() -> None:
    stats = StreamStats("video", NO_RECEIVER, _Packets(), fps=30)
    firsts: list[float] = []
    stats.on_first_frame = firsts.append
    assert stats.longest_freeze(end=10.0) == 0.0, "nothing received: no freeze measured yet"
    # (pts, keyframe, arrival): 30 fps is 3000 ticks of the 90 kHz clock per frame.
    arrivals = [
        (0, False, 1.0),  # forwarded mid-GOP: a decoder could not start here
        (3000, False, 1.033),
        (6000, True, 1.066),
        (9000, False, 1.1),
        (18000, False, 1.5),  # 3 frames missing: a gap, and 0.4 s without a frame
        (21000, False, 1.533),
        (21000 + 4500, False, 1.6),  # 1.5 frame durations: not a gap yet
        ((1 << 32) - 1000, True, 1.7),  # far back: a gap too (mod 2^32, a huge jump)
        (2000, False, 1.733),  # past the wrap: 3000 ticks later, no gap
    ]
    for pts, keyframe, now in arrivals:
        stats.on_frame(packet(pts, keyframe), now)
    assert stats.frames == 9 and stats.bytes == 9000 and stats.keyframes == 2
    assert stats.frame_gaps == 2
    assert (stats.first_frame_at, stats.first_keyframe_at) == (1.0, 1.066)
    assert not stats.started_on_keyframe and firsts == [1.0], "called once, with the first"
    assert stats.longest_gap == pytest.approx(0.4)
    assert stats.longest_freeze(end=1.8) == pytest.approx(0.4)
    assert stats.longest_freeze(end=3.0) == pytest.approx(3.0 - 1.733), "it stopped: a freeze"


def test_audio_has_no_keyframes_or_gaps() -> None:
    stats = StreamStats("audio", NO_RECEIVER, _Packets(), fps=30)
    for i, pts in enumerate((0, 960, 96000)):
        stats.on_frame(packet(pts, keyframe=True, size=80), 1.0 + i * 0.02)
    assert (stats.frames, stats.bytes, stats.keyframes, stats.frame_gaps) == (3, 240, 0, 0)
    assert stats.first_keyframe_at is None


def test_counts_subtract_into_a_window() -> None:
    start, end = Counts(10, 1, 5000, 40, 41, 0), Counts(70, 2, 35000, 160, 162, 3)
    assert end - start == Counts(60, 1, 30000, 120, 121, 3)


async def test_it_drains_a_track_until_it_ends_and_stops_cleanly() -> None:
    track = _Packets([packet(i * 3000, keyframe=i == 0) for i in range(5)])
    stats = StreamStats("video", NO_RECEIVER, track).start()
    await eventually(lambda: "" if stats.task and stats.task.done() else f"{stats.frames} frames")
    assert stats.frames == 5 and stats.started_on_keyframe and stats.frame_gaps == 0
    await stats.stop()  # after the end too: nothing to cancel, no error
    endless = StreamStats("video", NO_RECEIVER, _Packets(ends=False)).start()
    await asyncio.sleep(0)  # it now waits for a frame that never comes
    await endless.stop()  # a track that never sends: cancelled
    assert endless.task is not None and endless.task.cancelled()
