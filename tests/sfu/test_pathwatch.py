"""PathWatch: a silence is judged once, only on a connection heard from, never across a starved
loop or while nothing is expected."""

from __future__ import annotations

from sfu.pathwatch import PathWatch


def feed(watch: PathWatch, ticks: list[tuple[float, int, bool]]) -> list[float]:
    """(time, count, expecting) per tick -> the times at which the path was called dead."""
    return [now for now, heard, expecting in ticks if watch.observe(heard, expecting, now)]


def test_a_silence_after_traffic_is_called_dead_once() -> None:
    watch = PathWatch(3.0)
    ticks = [(t / 4, min(t, 4), True) for t in range(1, 40)]  # counts stop growing at 1.0 s
    assert feed(watch, ticks) == [4.0]


def test_a_connection_never_heard_from_is_not_judged() -> None:
    watch = PathWatch(3.0)
    assert feed(watch, [(t / 4, 0, True) for t in range(1, 40)]) == []


def test_time_not_expecting_anything_does_not_count() -> None:
    watch = PathWatch(3.0)
    ticks = [(0.25, 1, True), *((t / 4, 1, False) for t in range(2, 20)), (5.0, 1, True)]
    assert feed(watch, ticks) == []
    assert feed(watch, [(t / 4, 1, True) for t in range(21, 34)]) == [
        7.75
    ]  # 3 s after the last tick not expecting


def test_a_late_tick_is_the_loop_starving_not_the_path() -> None:
    watch = PathWatch(3.0)
    assert feed(watch, [(0.25, 1, True), (0.5, 1, True), (4.0, 1, True)]) == []
    assert feed(watch, [(4.25 + t / 4, 1, True) for t in range(12)]) == [7.0]


def test_rearmed_after_a_restart_a_new_silence_is_judged_again() -> None:
    watch = PathWatch(3.0)
    assert feed(watch, [(0.25, 1, True), *((t / 4, 1, True) for t in range(2, 14))]) == [3.25]
    assert feed(watch, [(t / 4, 1, True) for t in range(14, 40)]) == []  # no new verdict
    watch.rearm(10.0)
    assert feed(watch, [(10.0 + t / 4, 1, True) for t in range(1, 14)]) == [13.0]
    assert watch.silent_for(13.0) == 3.0
