"""sfu.dynacast: which layers a publisher keeps sending (table of wanted layers over time)."""

from __future__ import annotations

import pytest

from sfu.dynacast import PAUSE_DELAY, Dynacast

L, M, H = 0, 1, 2


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # Everyone on l: m and h paused once unwanted for PAUSE_DELAY, not before.
        ([(0.0, {L}), (PAUSE_DELAY - 0.1, {L})], [None, None]),
        ([(0.0, {L}), (PAUSE_DELAY, {L})], [None, {L}]),
        # Someone asks for h again: back at once, with m (everything up to the top wanted).
        ([(0.0, {L}), (PAUSE_DELAY, {L}), (10.0, {L, H})], [None, {L}, {L, M, H}]),
        # Everyone on h: the lower layers keep flowing (a step down needs one to go to).
        ([(0.0, {H}), (PAUSE_DELAY, {H})], [None, None]),
        # Everyone on m: h paused.
        ([(0.0, {M}), (PAUSE_DELAY, {M})], [None, {L, M}]),
        # Nobody in the room: everything paused.
        ([(0.0, set()), (PAUSE_DELAY, set())], [None, set()]),
        # Wanted again within the delay: never paused, and the delay starts over.
        (
            [(0.0, {L}), (2.0, {L, M, H}), (4.0, {L}), (4.0 + PAUSE_DELAY - 0.1, {L})],
            [None, None, None, None],
        ),
        # A rank above the top stands for the top.
        ([(0.0, {L, 7}), (PAUSE_DELAY, {L, 7})], [None, None]),
    ],
)
def test_pause_late_resume_at_once(
    steps: list[tuple[float, set[int]]], expected: list[set[int] | None]
) -> None:
    dynacast = Dynacast((L, M, H))
    got = [dynacast.update(wanted, t) for t, wanted in steps]
    assert got == [None if e is None else frozenset(e) for e in expected]


def test_a_publication_with_two_layers() -> None:
    dynacast = Dynacast((L, H))  # no m: wanting m means getting l
    assert dynacast.update({M}, 0.0) is None
    assert dynacast.update({M}, PAUSE_DELAY) == frozenset({L})
    assert dynacast.update({M, H}, PAUSE_DELAY + 1) == frozenset({L, H})


def test_next_change_says_when_to_look_again() -> None:
    dynacast = Dynacast((L, M, H))
    assert dynacast.next_change() is None
    dynacast.update({M}, 1.0)
    assert dynacast.next_change() == 1.0 + PAUSE_DELAY
    assert dynacast.update({M}, 1.0 + PAUSE_DELAY) == frozenset({L, M})
    assert dynacast.next_change() is None
    assert dynacast.active == frozenset({L, M})
