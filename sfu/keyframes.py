"""Keyframe request throttling: a sync algorithm with time passed in.

Every subscriber that joins, or loses pictures, asks for a keyframe, and a PLI makes a publisher
(Chromium) send a keyframe on all its layers: the publisher must not see a storm, and a joining
subscriber must not wait long. Two rules:

- A request made while an earlier one is still unanswered (sent, and no keyframe seen since) needs
  none of its own: that keyframe will serve it, since it has not started arriving yet. After
  `patience` seconds without a keyframe the request is taken as lost and may be sent again.
- Otherwise at most one request goes out per `interval`; one inside the window is deferred to the
  window's end, not dropped, so a subscriber that arrives just after a keyframe still gets one.

With simulcast a request names layers (a bit mask: bit i for the layer of rank i; a publication of
one stream uses bit 1). The window is the publisher's (Chromium answers a request for any layer
with keyframes on all of them); "unanswered" is per layer, since only a keyframe of the layer
asked for serves the subscribers waiting for it.
"""

from __future__ import annotations


class KeyframeThrottle:
    __slots__ = (
        "deferred",
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
        self.outstanding = 0  # layers asked for with no keyframe of theirs since (a mask)
        self.pending = False  # a deferred request is scheduled
        self.deferred = 0  # the layers it will name
        self.sent = 0
        self.suppressed = 0
        self.received = 0

    def request(self, now: float, layers: int = 1) -> float | None:
        """0.0: send now (for `layers`); a delay: send after it (schedule a call to fire());
        None: not needed."""
        if self.pending:
            self.deferred |= layers
            self.suppressed += 1
            return None
        if (
            self.outstanding & layers == layers
            and self.last_sent is not None
            and now - self.last_sent < self.patience
        ):
            self.suppressed += 1
            return None
        if self.last_sent is None or now - self.last_sent >= self.interval:
            self._sent(now, layers)
            return 0.0
        self.pending = True
        self.deferred = layers
        return self.last_sent + self.interval - now

    def fire(self, now: float) -> int:
        """The deferred request goes out now: returns the layers it names."""
        layers, self.deferred = self.deferred, 0
        self.pending = False
        self._sent(now, layers)
        return layers

    def keyframe(self, layers: int = 1) -> None:
        """A keyframe of these layers started arriving: it answers the requests for them."""
        self.outstanding &= ~layers
        self.received += 1

    def _sent(self, now: float, layers: int) -> None:
        self.last_sent = now
        self.outstanding |= layers
        self.sent += 1
