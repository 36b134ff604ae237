"""SenderClock: when each frame of a remote track was captured, by its publisher's clock.

Every RTP stream carries its own timestamps (90 kHz for video, 48 kHz for Opus), with a random
origin: on their own they cannot tell how a participant's audio lines up with its video. The
publisher's RTCP sender reports pair one RTP timestamp with its wall clock (NTP); the server
forwards that pairing, shifted into the timestamps it sends us (sfu.subscription). With it, any
frame's pts (as `track.recv()` returns it, decoded or not) maps to the moment it was captured,
in the same clock for all of a publisher's tracks: what lip sync and a recorder need.

Reports arrive about every second for video and every five for audio, the first at once when
forwarding starts. Until the publisher's own first report reaches the server, the server
pairs its own clock with the latest timestamp it received (an estimate, off by the publisher's
send delay and any difference between the two machines' clocks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)


@dataclass(frozen=True)
class SenderReport:
    """One clock pair from an RTCP sender report."""

    ntp_time: float  # the publisher's wall clock, Unix seconds
    rtp_timestamp: int  # the stream's 32-bit RTP timestamp at that moment, as we receive it
    received_at: float  # our time.time() when the report arrived


def ntp_to_unix(ntp_timestamp: int) -> float:
    """A 64-bit NTP timestamp (32.32 fixed point, from 1900) as Unix seconds."""
    return (ntp_timestamp >> 32) - NTP_UNIX_OFFSET + (ntp_timestamp & 0xFFFFFFFF) / (1 << 32)


class SenderClock:
    """The latest sender report of one remote track, and what it says about its frames.

    `rtp_to_pts` maps an RTP timestamp to the pts the track's frames carry (None until the
    first frame fixed the origin); `clock_rate` is the codec's.
    """

    def __init__(
        self, clock_rate: int = 90_000, rtp_to_pts: Callable[[int], int | None] | None = None
    ) -> None:
        self.clock_rate = clock_rate
        self.report: SenderReport | None = None
        self.reports = 0
        self._rtp_to_pts = rtp_to_pts
        self._callbacks: list[Callable[[SenderReport], None]] = []

    def on_report(self, callback: Callable[[SenderReport], None]) -> None:
        """Call `callback(report)` for each sender report from now on."""
        self._callbacks.append(callback)

    def add(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        """A sender report arrived (called by the client)."""
        report = SenderReport(ntp_to_unix(ntp_timestamp), rtp_timestamp, time.time())
        self.report = report
        self.reports += 1
        for callback in self._callbacks:
            callback(report)

    def capture_time(self, pts: int) -> float | None:
        """When the frame with this pts was captured, in Unix seconds of the publisher's clock;
        None before the first sender report (or the first frame)."""
        report = self.report
        if report is None or self._rtp_to_pts is None:
            return None
        report_pts = self._rtp_to_pts(report.rtp_timestamp)
        if report_pts is None:
            return None
        return report.ntp_time + (pts - report_pts) / self.clock_rate
