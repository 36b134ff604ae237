"""What a synthetic peer receives, counted the same way in every harness, and the one percentile.

`aiosfu loadtest` (loadtest.peers), the forwarding benchmark and the side-by-side one with Janus
(loadtest.forwarding, loadtest.sidebyside) all count a received track with `StreamStats`: it
drains one remote track of encoded frames (never decoded) and counts, as they arrive, frames,
bytes and keyframes, video timestamp gaps, the longest wait between two frames (a freeze), and
when the first frame and the first keyframe came. `counts()` adds the receiver's RTP counters;
two of them, at a window's ends, make the window's figures.

RTP counts come from the receiver's per-SSRC statistics (the numbers behind getStats()'s
inbound-rtp): aiortc names every inbound-rtp entry of a receiver "inbound-rtp_<id(receiver)>",
so once retransmissions (RTX, a second SSRC) arrive, getStats() reports only one of the two
streams. We read the media SSRC's counters and count RTX apart (sfu.rtc.receiver.rtp_counts).

`percentile` is nearest-rank: the smallest value with at least q % of the values at or below it,
always a value some peer measured (p100 is the maximum; with 10 values p95 is the largest).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from sfu.rtc import receiver as rtc_receiver

RTP_TS_MODULO = 1 << 32
VIDEO_CLOCK = 90_000  # RTP clock rate of every video codec


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int | None]:
    """n, p50, p95, p99, min, max and mean of the values times `scale`, for a JSON report."""
    scaled = [v * scale for v in values]

    def clean(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 3)

    return {
        "n": len(scaled),
        "p50": clean(percentile(scaled, 50)),
        "p95": clean(percentile(scaled, 95)),
        "p99": clean(percentile(scaled, 99)),
        "min": clean(min(scaled)) if scaled else None,
        "max": clean(max(scaled)) if scaled else None,
        "mean": clean(sum(scaled) / len(scaled)) if scaled else None,
    }


def receiver_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpReceiver:
    """The receiver whose remote track this is (sfu.client's RemoteTrack.track, Janus's)."""
    return next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)


def sender_of(pc: RTCPeerConnection, track: MediaStreamTrack) -> RTCRtpSender:
    """The sender of a local track."""
    return next(s for s in pc.getSenders() if s.track is track)


@dataclass(frozen=True)
class Counts:
    """A stream's running totals; the difference of two snapshots is a window's."""

    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    rtp_received: int = 0  # media packets (the media SSRC)
    rtp_expected: int = 0  # from the media SSRC's sequence numbers
    rtx: int = 0  # retransmissions received on the RTX SSRC

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            self.frames - other.frames,
            self.keyframes - other.keyframes,
            self.bytes - other.bytes,
            self.rtp_received - other.rtp_received,
            self.rtp_expected - other.rtp_expected,
            self.rtx - other.rtx,
        )


class StreamStats:
    """Drains one remote track of encoded frames (av.Packet), counting them as they arrive.

    Times are on the monotonic clock. `on_first_frame(now)` is called once, with the first frame.
    `fps` is what the sender means to send: a video timestamp jump of more than 1.5 frame
    durations counts as a gap (a frame missing, or a stall).
    """

    def __init__(
        self,
        kind: str,
        receiver: RTCRtpReceiver,
        track: MediaStreamTrack,
        *,
        fps: int = 30,
        on_first_frame: Callable[[float], None] | None = None,
    ) -> None:
        self.kind = kind
        self.receiver = receiver
        self.track = track
        self.on_first_frame = on_first_frame
        self.frames = self.bytes = self.keyframes = self.frame_gaps = 0
        self.first_frame_at: float | None = None
        self.first_keyframe_at: float | None = None
        self.started_on_keyframe = False
        self.last_at: float | None = None
        self.longest_gap = 0.0
        self._last_pts: int | None = None
        self._max_step = int(1.5 * VIDEO_CLOCK / fps)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> StreamStats:
        self.task = asyncio.ensure_future(self._consume())
        return self

    def on_frame(self, packet: Any, now: float) -> None:
        self.frames += 1
        self.bytes += packet.size
        if self.last_at is None:
            self.first_frame_at = now
            self.started_on_keyframe = bool(packet.is_keyframe)
            if self.on_first_frame is not None:
                self.on_first_frame(now)
        elif now - self.last_at > self.longest_gap:
            self.longest_gap = now - self.last_at
        self.last_at = now
        if self.kind == "video":
            if packet.is_keyframe:
                self.keyframes += 1
                if self.first_keyframe_at is None:
                    self.first_keyframe_at = now
            pts = packet.pts
            if self._last_pts is not None and (pts - self._last_pts) % RTP_TS_MODULO > (
                self._max_step
            ):
                self.frame_gaps += 1
            self._last_pts = pts

    def counts(self) -> Counts:
        received, expected, rtx = rtc_receiver.rtp_counts(self.receiver)
        return Counts(self.frames, self.keyframes, self.bytes, received, expected, rtx)

    def longest_freeze(self, end: float) -> float:
        """The longest wait between two frames, or from the last one to `end` (a stream that
        stopped is one long freeze); 0 before the first frame."""
        if self.last_at is None:
            return 0.0
        return max(self.longest_gap, end - self.last_at)

    async def _consume(self) -> None:
        recv = self.track.recv
        with contextlib.suppress(MediaStreamError):
            while True:
                packet = await recv()  # an av.Packet: encoded, never decoded
                self.on_frame(packet, time.monotonic())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
