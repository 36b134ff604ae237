"""Exponential backoff with jitter, capped: when a client tries again after a loss.

A sync algorithm with the randomness passed in (`rand` in [0, 1)), so tests can pin it. Attempt n
waits `min(cap, first * factor ** (n - 1))`, less up to `jitter` of it at random, so that clients
that lost the same server at the same moment do not all come back in the same instant.
The browser library (web/sfu-client.js, `backoffDelay`) computes the same delays.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 0.25  # seconds before the first attempt
    factor: float = 2.0
    cap: float = 5.0  # the longest wait between two attempts
    jitter: float = 0.5  # the share of each wait that is random

    def __post_init__(self) -> None:
        assert 0 < self.first <= self.cap, "need 0 < first <= cap"
        assert self.factor >= 1, "the factor must not shrink the waits"
        assert 0 <= self.jitter <= 1, "jitter is a share of the wait"

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds to wait before attempt `attempt` (1 for the first)."""
        base = min(self.cap, self.first * self.factor ** max(0, attempt - 1))
        return base * (1.0 - self.jitter * rand)

    def budget(self, attempts: int) -> float:
        """The longest time `attempts` attempts can take to be spent (waits only)."""
        return sum(self.delay(n, 0.0) for n in range(1, attempts + 1))
