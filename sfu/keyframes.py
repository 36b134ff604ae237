"""Keyframe request throttling: a sync algorithm with time passed in.

Every subscriber that joins, or loses pictures, asks for a keyframe, and a PLI makes a publisher
(Chromium) send a keyframe on all its layers: the publisher must not see a storm, and a joining
subscriber must not wait long. Two rules:

- A request made while an earlier one is still unanswered (sent, and no keyframe seen since) needs
  none of its own: that keyframe will serve it, since it has not started arriving yet. After
  `patience` seconds without a keyframe the request is taken as lost and may be sent again.
- Otherwise at most one request goes out per `interval`; one inside the window is deferred to the
  window's end, not dropped, so a subscriber that arrives just after a keyframe still gets one.
"""

from __future__ import annotations


class KeyframeThrottle:
    __slots__ = (
        "interval",
        "last_sent",
        "outstanding",
        "patience",
        "pending",
        "received",
        "sent",
        "suppressed",
    )

    def __init__(self, interval: float, patience: float = 1.0) -> None:
        assert interval > 0, "interval must be positive"
        assert patience >= interval, "patience must be at least the interval"
        self.interval = interval
        self.patience = patience
        self.last_sent: float | None = None
        self.outstanding = False  # a request went out and no keyframe came since
        self.pending = False  # a deferred request is scheduled
        self.sent = 0
        self.suppressed = 0
        self.received = 0

    def request(self, now: float) -> float | None:
        """0.0: send now; a delay: send after it (schedule a call to fire()); None: not needed."""
        if self.pending or (
            self.outstanding and self.last_sent is not None and now - self.last_sent < self.patience
        ):
            self.suppressed += 1
            return None
        if self.last_sent is None or now - self.last_sent >= self.interval:
            self._sent(now)
            return 0.0
        self.pending = True
        return self.last_sent + self.interval - now

    def fire(self, now: float) -> None:
        """The deferred request went out."""
        self.pending = False
        self._sent(now)

    def keyframe(self) -> None:
        """A keyframe started arriving: it answers every request sent so far."""
        self.outstanding = False
        self.received += 1

    def _sent(self, now: float) -> None:
        self.last_sent = now
        self.outstanding = True
        self.sent += 1
