"""sfu.allocation: layers for `auto` subscriptions from an estimate, driven by an injected clock.

Costs as a 640x360 + 1280x720 ladder might have them: l 150 kbps, m 500, h 1500.
"""

from __future__ import annotations

import pytest

from sfu.allocation import (
    BACKOFF_MIN,
    PROBE_DURATION,
    UP_HOLD,
    Allocation,
    Demand,
    LayerAllocator,
)

COSTS = (150_000, 500_000, 1_500_000)
L, M, H = 0, 1, 2
A = Demand("a", COSTS, top=H)


Step = tuple[float, int | None, bool]  # time, estimate, congested


def run(steps: list[Step], demands: tuple[Demand, ...] = (A,), fixed: int = 0) -> list[Allocation]:
    allocator = LayerAllocator()
    return [allocator.allocate(e, congested, fixed, demands, t) for t, e, congested in steps]


def layers_of(allocations: list[Allocation], key: str = "a") -> list[int | None]:
    return [a.layers[key] for a in allocations]


def test_no_estimate_no_limit() -> None:
    assert layers_of(run([(0, None, False), (1, None, True)])) == [None, None]


def test_starts_at_the_top_without_congestion() -> None:
    # A receive-side estimate shows only what was tried: no reason to start lower.
    assert layers_of(run([(0, 300_000, False), (1, 300_000, False)])) == [H, H]


@pytest.mark.parametrize(
    ("estimate", "layer"),
    [
        (2_000_000, H),
        (1_400_000, H),  # 1.1 x 1.4 M >= 1.5 M: what arrives is what a REMB sits at
        (1_300_000, M),
        (460_000, M),
        (450_000, L),
        (10_000, L),  # the lowest layer whatever the estimate
    ],
)
def test_on_congestion_what_fits(estimate: int, layer: int) -> None:
    assert layers_of(run([(0, estimate, True)])) == [layer]
    assert layers_of(run([(0, 5_000_000, False), (1, estimate, True)])) == [H, layer]


def test_down_at_once_up_after_the_hold_and_back_off() -> None:
    steps: list[Step] = [
        (0.0, 2_000_000, False),  # h
        (1.0, 1_000_000, True),  # congestion: m at once
        (1.25, 2_000_000, False),  # fits again, but the back-off (4 s) holds it
        (3.0, 2_000_000, False),
        (5.0, 2_000_000, False),  # 4 s after the step down, UP_HOLD passed: h
        (6.0, 900_000, True),  # down again within FAILED_UP_WINDOW of the step up: back-off 8 s
        (7.0, 2_000_000, False),
        (13.0, 2_000_000, False),  # still held
        (14.0, 2_000_000, False),  # 8 s after the step down: h
    ]
    assert layers_of(run(steps)) == [H, M, M, M, H, M, M, M, H]


def test_no_step_down_without_congestion() -> None:
    # Below what h costs, but it never fell: the most tried so far, not a limit.
    assert layers_of(run([(0.0, 2_000_000, False), (1.0, 600_000, False)])) == [H, H]


def test_one_layer_at_a_time_with_the_hold_between() -> None:
    steps: list[Step] = [(0.0, 200_000, True)]  # l
    steps += [(t / 4, 3_000_000, False) for t in range(1, 40)]
    layers = layers_of(run(steps))
    assert layers[0] == L
    first_m, first_h = layers.index(M), layers.index(H)
    assert steps[first_m][0] == pytest.approx(0.25 + UP_HOLD, abs=0.26)
    assert steps[first_h][0] - steps[first_m][0] == pytest.approx(UP_HOLD, abs=0.26)


def test_no_flapping_at_the_edge() -> None:
    # Between 1.5 M / 1.1 and 1.5 M x 1.15 h neither drops nor comes back, even when each fall
    # is a congestion sign.
    wobbly = [(1_400_000, True), (1_700_000, False), (1_380_000, True), (1_720_000, False)] * 20
    first = [(2_000_000, False)]
    from_h = run([(i / 4, e, c) for i, (e, c) in enumerate(first + wobbly)])
    assert set(layers_of(from_h)) == {H}
    first = [(1_000_000, True)]
    from_m = run([(i / 4, e, c) for i, (e, c) in enumerate(first + wobbly)])
    assert set(layers_of(from_m)) == {M}


def test_a_probe_without_congestion_moves_up() -> None:
    allocator = LayerAllocator()
    # Down to m on congestion; there a REMB grows only to ~1.5 x what arrives: h never fits
    # without padding. Once the back-off is over, a probe up to h's cost.
    assert allocator.allocate(750_000, True, 0, [A], 0.0).layers == {"a": M}
    t = BACKOFF_MIN
    first = allocator.allocate(750_000, False, 0, [A], t)
    assert first.layers == {"a": M}
    assert (first.padding, first.probing) == (1_000_000, "a")
    paddings = []
    allocation = first
    while allocation.layers["a"] == M:
        t += 0.25
        allocation = allocator.allocate(760_000, False, 0, [A], t)
        paddings.append(allocation.padding)
        assert t < BACKOFF_MIN + PROBE_DURATION + 0.5, allocation
    assert t == pytest.approx(BACKOFF_MIN + PROBE_DURATION, abs=0.26)
    assert set(paddings[:-1]) == {1_000_000}
    assert allocation.padding == 0 and allocation.probing is None  # at the top: done


def test_a_probe_that_meets_congestion_stops_and_backs_off() -> None:
    allocator = LayerAllocator()
    allocator.allocate(750_000, True, 0, [A], -BACKOFF_MIN)  # m
    assert allocator.allocate(750_000, False, 0, [A], 0.0).padding > 0
    assert allocator.allocate(800_000, False, 0, [A], 0.25).padding > 0
    fell = allocator.allocate(700_000, True, 0, [A], 0.5)  # the estimate fell: congestion
    assert (fell.padding, fell.layers["a"]) == (0, M)
    # Held back for the back-off (doubled), then a new probe.
    held = [allocator.allocate(750_000, False, 0, [A], 0.5 + t / 4).padding for t in range(1, 40)]
    assert held[: int(2 * BACKOFF_MIN * 4) - 1] == [0] * (int(2 * BACKOFF_MIN * 4) - 1)
    assert held[-1] > 0


def test_no_probe_above_or_at_the_top() -> None:
    assert run([(0.0, 5_000_000, False)])[0].padding == 0
    top_m = Demand("a", COSTS, top=M)
    assert run([(0.0, 750_000, False)], (top_m,))[0].padding == 0


def test_everyone_gets_m_before_anyone_gets_h() -> None:
    b = Demand("b", COSTS, top=H)
    (allocation,) = run([(0.0, 1_800_000, True)], (A, b))  # 1.98 M to share: m + m, not h + l
    assert allocation.layers == {"a": M, "b": M}
    (allocation,) = run([(0.0, 2_000_000, True)], (A, b))  # 2.2 M: h + m
    assert sorted(v or 0 for v in allocation.layers.values()) == [M, H]


def test_fixed_costs_come_first() -> None:
    (allocation,) = run([(0.0, 2_000_000, True)], fixed=900_000)  # 2.2 M - 0.9 M: m
    assert allocation.layers == {"a": M}


def test_a_demand_that_leaves_is_forgotten() -> None:
    allocator = LayerAllocator()
    b = Demand("b", COSTS, top=H)
    allocator.allocate(1_000_000, True, 0, [A, b], 0.0)
    allocation = allocator.allocate(1_000_000, False, 0, [b], 1.0)
    assert allocation.layers == {"b": M}
