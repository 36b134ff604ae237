"""LayerAllocator: which simulcast layer each `auto` subscription of one subscriber gets.

The subscriber's downlink estimate (sfu.bwe) is shared by everything we send it: what it asked
for by name (a fixed layer, audio, plain video: `fixed`) comes first, and the `auto`
subscriptions share the rest, every one of them raised a layer before any is raised twice
(everyone gets `m` before anyone gets `h`). Then, per subscription:

- **down fast**: as soon as its layer no longer fits (what we send it is more than
  `DOWN_SLACK` times the estimate: a receive-side estimate sits at what arrives and grows above
  it only with time, and drops to ~85 % of it on congestion), it gets the layer that fits, at once;
- **up carefully**: a higher layer must fit with `UP_MARGIN` to spare for `UP_HOLD` seconds in a
  row, one layer at a time, and not within the back-off that follows a failed attempt (a step down
  within `FAILED_UP_WINDOW` of a step up doubles it, from `BACKOFF_MIN` to `BACKOFF_MAX`; a layer
  held for `STABLE` seconds brings it back to the minimum). No flapping at the edge;
- **probing**: a REMB-based estimate grows only up to ~1.5 times what arrives, so the next layer
  up cannot fit while we send the one below. When a subscription is below what it may have and
  nothing holds it back, the allocator asks for padding (`Allocation.padding`, bits/s on top of
  the media) up to the next layer's cost, so the estimate can grow until that layer fits; the
  estimate falling while probing (below `PROBE_DROP` of its peak since the probe began), or a
  probe that has not got there in `PROBE_TIMEOUT`, is a failed attempt and backs off.

Sync, time passed in; one per subscriber (sfu.participant drives it every tick).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

DOWN_SLACK = 1.1
UP_MARGIN = 1.15
UP_HOLD = 2.0  # seconds
FAILED_UP_WINDOW = 10.0  # seconds
BACKOFF_MIN = 4.0  # seconds
BACKOFF_MAX = 60.0
STABLE = 30.0  # seconds
PROBE_DROP = 0.85  # an estimate this far below its peak since the probe began: congestion
PROBE_TIMEOUT = 15.0  # seconds a probe may take before it counts as failed


@dataclass(frozen=True, slots=True)
class Demand:
    """One `auto` video subscription, as the allocator sees it."""

    key: Hashable
    costs: Sequence[int]  # bits/s of each layer, lowest first (one never seen: a guess)
    top: int  # the highest layer it may have (the publication's top one)


class Allocation(NamedTuple):
    layers: dict[Hashable, int | None]  # per demand: its layer (None: no limit, nothing known)
    padding: int  # bits/s of padding to send on top of the media, to probe (0: none)
    probing: Hashable | None  # the demand the padding probes for


@dataclass(slots=True)
class _State:
    layer: int
    changed_at: float
    up_since: float | None = None  # since when a higher layer fits, with margin
    last_up: float = -1e9
    backoff: float = BACKOFF_MIN
    hold_until: float = -1e9
    probe_started: float | None = None


@dataclass(slots=True)
class LayerAllocator:
    _states: dict[Hashable, _State] = field(default_factory=dict)
    _probing: Hashable | None = None
    _probe_peak: int = 0

    def allocate(
        self, estimate: int | None, fixed: int, demands: Sequence[Demand], now: float
    ) -> Allocation:
        live = {d.key for d in demands}
        for key in [k for k in self._states if k not in live]:
            del self._states[key]
        if self._probing not in live:
            self._probing = None
        if estimate is None:
            # Nothing known yet: no limit (the subscription gets its best flowing layer).
            self._states.clear()
            self._probing = None
            return Allocation(dict.fromkeys(live), 0, None)
        down = _fit(estimate * DOWN_SLACK - fixed, demands)
        up = _fit(estimate / UP_MARGIN - fixed, demands)
        layers: dict[Hashable, int] = {}
        for d in demands:
            state = self._states.get(d.key)
            if state is None:
                state = self._states[d.key] = _State(down[d.key], now)
            self._step(state, d, down[d.key], up[d.key], now)
            layers[d.key] = state.layer
        padding = self._probe(estimate, demands, layers, up, now)
        return Allocation(dict(layers), padding, self._probing if padding else None)

    def _step(self, state: _State, d: Demand, down: int, up: int, now: float) -> None:
        if down < state.layer:
            if now - state.last_up < FAILED_UP_WINDOW:
                state.backoff = min(BACKOFF_MAX, state.backoff * 2)
            state.hold_until = now + state.backoff
            state.layer, state.changed_at, state.up_since = down, now, None
            state.probe_started = None
            return
        if now - state.changed_at >= STABLE:
            state.backoff = BACKOFF_MIN
        if up <= state.layer or state.layer >= d.top:
            state.up_since = None
            return
        if state.up_since is None:
            state.up_since = now
        if now - state.up_since >= UP_HOLD and now >= state.hold_until:
            state.layer += 1
            state.changed_at = state.last_up = now
            state.up_since = None
            state.probe_started = None

    def _probe(
        self,
        estimate: int,
        demands: Sequence[Demand],
        layers: dict[Hashable, int],
        up: dict[Hashable, int],
        now: float,
    ) -> int:
        """Padding (bits/s) to send now, for the probe under way or a new one."""
        sending = sum(d.costs[layers[d.key]] for d in demands)
        probing = self._probing
        if probing is not None:
            state = self._states[probing]
            started = state.probe_started
            goal = _cost(demands, layers, raised=probing)
            if started is None or goal is None:
                self._probing = None  # it went up (or down): the probe is over
            else:
                self._probe_peak = max(self._probe_peak, estimate)
                fell = estimate < PROBE_DROP * self._probe_peak
                if fell or now - started > PROBE_TIMEOUT:
                    # A failed attempt: back off as after a step down.
                    state.backoff = min(BACKOFF_MAX, state.backoff * 2)
                    state.hold_until = now + state.backoff
                    state.probe_started = None
                    self._probing = None
                    return 0
                return max(0, goal - sending)
        candidates = sorted(
            (d for d in demands if layers[d.key] < d.top and up[d.key] <= layers[d.key]),
            key=lambda d: layers[d.key],
        )
        for d in candidates:
            state = self._states[d.key]
            goal = _cost(demands, layers, raised=d.key)
            if now < state.hold_until or goal is None or goal <= sending:
                continue
            self._probing = d.key
            self._probe_peak = estimate
            state.probe_started = now
            return goal - sending
        return 0


def _cost(
    demands: Sequence[Demand], layers: dict[Hashable, int], raised: Hashable | None = None
) -> int | None:
    """bits/s of the demands at these layers, with `raised` one layer up (None when that one is
    at its top already)."""
    total = 0
    for d in demands:
        layer = layers[d.key]
        if d.key == raised:
            if layer >= d.top:
                return None
            layer += 1
        total += d.costs[layer]
    return total


def _fit(budget: float, demands: Sequence[Demand]) -> dict[Hashable, int]:
    """The highest layers that fit in `budget`, raised one layer at a time, every demand in
    turn; each gets its lowest layer whatever the budget (pausing video is not ours to do)."""
    fit = {d.key: 0 for d in demands}
    used = sum(d.costs[0] for d in demands)
    top = max((d.top for d in demands), default=0)
    for layer in range(1, top + 1):
        for d in demands:
            if layer > d.top or fit[d.key] != layer - 1:
                continue
            extra = d.costs[layer] - d.costs[layer - 1]
            if used + extra <= budget:
                fit[d.key] = layer
                used += extra
    return fit
