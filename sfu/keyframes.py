"""Keyframe request throttling: a sync algorithm with time passed in.

Every subscriber that joins, switches or loses pictures asks for a keyframe, and a PLI makes a
publisher (Chromium) send a keyframe on all its layers: the publisher must not see a storm. At
most one request goes out per `interval`; a request inside the window is not dropped but
deferred to the window's end, so a subscriber that arrives just after a keyframe still gets one.
"""

from __future__ import annotations


class KeyframeThrottle:
    __slots__ = ("interval", "last_sent", "pending", "sent", "suppressed")

    def __init__(self, interval: float) -> None:
        assert interval > 0, "interval must be positive"
        self.interval = interval
        self.last_sent: float | None = None
        self.pending = False
        self.sent = 0
        self.suppressed = 0

    def request(self, now: float) -> float | None:
        """0.0: send now; a delay: send after it (schedule a call to fire()); None: already due."""
        if self.pending:
            self.suppressed += 1
            return None
        if self.last_sent is None or now - self.last_sent >= self.interval:
            self.last_sent = now
            self.sent += 1
            return 0.0
        self.pending = True
        return self.last_sent + self.interval - now

    def fire(self, now: float) -> None:
        """The deferred request went out."""
        self.pending = False
        self.last_sent = now
        self.sent += 1
