"""Rate limits: token buckets and the flood rule, sync algorithms with time passed in.

Every frame a client sends costs one token of its message bucket and its size in bytes of its byte
bucket; tokens come back at `rate` per second up to `burst`. A frame either bucket cannot pay for
is dropped. The first drop starts a *flood*: the client gets one `rate_limited` error for the
whole flood, not one per frame (answering each would feed the flood). A flood ends once a second
has passed with nothing dropped. A client still being dropped `flood_seconds` after its flood
began, or after `flood_frames` drops, is cut off (signaling.session closes it with 1008). One
session's flood must not slow the event loop that serves everyone else's media.
"""

from __future__ import annotations

from enum import Enum

# A flood is over once this long has passed with no frame dropped.
CALM_SECONDS = 1.0


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        assert rate > 0 and burst >= 1, "rate must be positive and burst at least 1"
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated: float | None = None

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are that many."""
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


class Verdict(Enum):
    ACCEPT = "accept"
    WARN = "warn"  # dropped, the first of a flood: tell the client once
    DROP = "drop"  # dropped silently, the flood goes on
    CUT = "cut"  # dropped, and the client has flooded for too long: disconnect it


class FrameLimiter:
    """One session's frame and byte buckets, and its flood state."""

    __slots__ = (
        "bytes",
        "dropped",
        "flood_frames",
        "flood_seconds",
        "flood_started",
        "frames",
        "last_drop",
        "over",
    )

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        byte_rate: float,
        byte_burst: int,
        flood_frames: int,
        flood_seconds: float,
    ) -> None:
        self.frames = TokenBucket(rate, burst) if rate else None
        self.bytes = TokenBucket(byte_rate, byte_burst) if byte_rate else None
        self.flood_frames = flood_frames
        self.flood_seconds = flood_seconds
        self.flood_started: float | None = None
        self.last_drop = 0.0
        self.dropped = 0  # in the current flood
        self.over = ""  # which limit started the current flood: "messages" or "bytes"

    def check(self, size: int, now: float) -> Verdict:
        over = ""
        if self.frames is not None and not self.frames.take(now):
            over = "messages"
        elif self.bytes is not None and not self.bytes.take(now, size):
            over = "bytes"
        if self.flood_started is not None and now - self.last_drop >= CALM_SECONDS:
            self.flood_started = None
        if not over:
            return Verdict.ACCEPT
        self.last_drop = now
        if self.flood_started is None:
            self.flood_started, self.dropped, self.over = now, 1, over
            return Verdict.WARN
        self.dropped += 1
        if self.dropped >= self.flood_frames or now - self.flood_started >= self.flood_seconds:
            return Verdict.CUT
        return Verdict.DROP
