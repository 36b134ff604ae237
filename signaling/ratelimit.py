"""Rate limits: a token bucket, a sync algorithm with time passed in.

Every frame a client sends costs one token; tokens come back at `rate` per second up to `burst`.
A client over its rate gets one `rate_limited` error and its frames are dropped until tokens
come back; one that keeps flooding is disconnected (signaling.session). One session's flood must
not slow the event loop that serves everyone else's media.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        assert rate > 0 and burst >= 1, "rate must be positive and burst at least 1"
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated: float | None = None

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
