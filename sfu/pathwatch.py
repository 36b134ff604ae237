"""PathWatch: when has a connection that was receiving gone silent for long enough to call its
path dead?

The Python client's side of dead-path detection (the server has its own in sfu.participant,
DEAD_PATH_TIMEOUT): fed a count of what arrived (sfu.rtc.liveness) on a tick, it says once per
silence that the path looks dead. Only a connection heard from since the last verdict is judged
(a client with nothing to receive is not dead); time while it is not expected to receive (not
connected, a restart under way) does not count; neither does a tick that came late, since a
starved event loop reads nothing either, and what it has not read yet is not silence.
Synchronous, time passed in.
"""

from __future__ import annotations

STARVED = 1.0  # seconds between ticks past which the loop, not the path, was silent


class PathWatch:
    __slots__ = ("_armed", "_heard", "_heard_at", "_last_tick", "timeout")

    def __init__(self, timeout: float) -> None:
        assert timeout > 0, "timeout must be positive"
        self.timeout = timeout
        self._heard = 0
        self._heard_at = 0.0
        self._armed = False  # heard from since the last verdict
        self._last_tick: float | None = None

    def observe(self, heard: int, expecting: bool, now: float) -> bool:
        """`heard`: a count that grows with what arrives; `expecting`: whether anything should
        (connected, no restart under way). True once when the silence reaches the timeout."""
        late = self._last_tick is not None and now - self._last_tick > STARVED
        self._last_tick = now
        if heard != self._heard:
            self._heard, self._heard_at, self._armed = heard, now, True
            return False
        if not expecting or late:
            self._heard_at = now
            return False
        if not self._armed or now - self._heard_at < self.timeout:
            return False
        self._armed = False  # one verdict per silence
        return True

    def rearm(self, now: float) -> None:
        """A new path (an ICE restart succeeded): judge it afresh, from now."""
        self._armed, self._heard_at = True, now

    def silent_for(self, now: float) -> float:
        return now - self._heard_at
