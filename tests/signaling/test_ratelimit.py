"""TokenBucket: time passed in, input -> output."""

from __future__ import annotations

import pytest

from signaling.ratelimit import TokenBucket


def test_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token back
    assert bucket.take(0.1) is True
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


def test_bad_settings_are_refused() -> None:
    with pytest.raises(AssertionError):
        TokenBucket(rate=0, burst=3)
    with pytest.raises(AssertionError):
        TokenBucket(rate=1, burst=0)
