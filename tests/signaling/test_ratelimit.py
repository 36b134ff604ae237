"""TokenBucket and FrameLimiter: time passed in, input -> output."""

from __future__ import annotations

import pytest

from signaling.ratelimit import CALM_SECONDS, FrameLimiter, TokenBucket, Verdict


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


def limiter(**kwargs: float) -> FrameLimiter:
    settings: dict[str, float] = {
        "rate": 10,
        "burst": 5,
        "byte_rate": 0,
        "byte_burst": 0,
        "flood_frames": 1000,
        "flood_seconds": 5.0,
    }
    settings.update(kwargs)
    return FrameLimiter(**settings)  # type: ignore[arg-type]


def run(lim: FrameLimiter, times: list[float], size: int = 10) -> list[Verdict]:
    return [lim.check(size, t) for t in times]


def test_a_steady_flood_at_twice_the_rate_is_told_once_then_cut_off() -> None:
    # The fuzzer's finding: each accepted frame reset the count, so a 2x flood got one error per
    # dropped frame and was never disconnected.
    lim = limiter(burst=1)
    verdicts = run(lim, [i / 20 for i in range(200)])  # 20 frames/s for 10 s, limit 10/s
    assert verdicts.count(Verdict.WARN) == 1
    cut = verdicts.index(Verdict.CUT)
    assert 4.9 <= cut / 20 <= 5.1, cut / 20  # flood_seconds after the first drop
    assert set(verdicts[:cut]) == {Verdict.ACCEPT, Verdict.WARN, Verdict.DROP}


def test_a_fast_flood_is_cut_after_flood_frames() -> None:
    lim = limiter(flood_frames=100)
    verdicts = run(lim, [0.0] * 200)
    assert verdicts[:5] == [Verdict.ACCEPT] * 5
    assert verdicts[5] == Verdict.WARN
    assert verdicts[6:104] == [Verdict.DROP] * 98
    assert verdicts[104] == Verdict.CUT  # the 100th drop


def test_a_flood_ends_after_a_calm_second_and_the_next_one_is_told_again() -> None:
    lim = limiter()
    assert run(lim, [0.0] * 7) == [Verdict.ACCEPT] * 5 + [Verdict.WARN, Verdict.DROP]
    assert run(lim, [0.5]) == [Verdict.ACCEPT]  # tokens came back; the flood goes on
    assert run(lim, [CALM_SECONDS + 0.1]) == [Verdict.ACCEPT]  # a second with no drop: over
    assert Verdict.WARN in run(lim, [CALM_SECONDS + 0.1] * 6)  # a new flood, a new error


def test_a_burst_then_normal_traffic_is_never_cut() -> None:
    lim = limiter(flood_seconds=2.0)
    verdicts = run(lim, [0.0] * 20 + [0.2 * i for i in range(1, 100)])  # then 5/s for 20 s
    assert verdicts.count(Verdict.WARN) == 1 and Verdict.CUT not in verdicts
    assert verdicts[-50:] == [Verdict.ACCEPT] * 50


def test_bytes_have_their_own_bucket() -> None:
    lim = limiter(rate=0, byte_rate=1000, byte_burst=3000)
    assert run(lim, [0.0] * 4, size=1000) == [Verdict.ACCEPT] * 3 + [Verdict.WARN]
    assert lim.over == "bytes"
    assert run(lim, [CALM_SECONDS + 1], size=1000) == [Verdict.ACCEPT]
