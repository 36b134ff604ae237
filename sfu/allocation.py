"""LayerAllocator: which simulcast layer each `auto` subscription of one subscriber gets.

The subscriber's downlink estimate (sfu.bwe) is shared by everything we send it: what it asked
for by name (a fixed layer, audio, plain video: `fixed`) comes first, and the `auto`
subscriptions share the rest, every one of them raised a layer before any is raised twice
(everyone gets `m` before anyone gets `h`). Then, per subscription:

- **down fast**: on congestion (the estimate just fell, or loss is high: sfu.bwe), a subscription
  whose layer no longer fits (more than `DOWN_SLACK` times the estimate, which a receive-side
  estimator sets to ~85 % of what arrived) gets the layer that fits, at once. Without
  congestion the estimate is only the most that was tried: a new subscription starts at the top;
- **up carefully**: a higher layer must fit with `UP_MARGIN` to spare for `UP_HOLD` seconds in a
  row, one layer at a time, and not within the back-off that follows a failed attempt (a step down
  within `FAILED_UP_WINDOW` of a step up doubles it, from `BACKOFF_MIN` to `BACKOFF_MAX`; a layer
  held for `STABLE` seconds brings it back to the minimum). No flapping at the edge;
- **probing**: a REMB-based estimate grows only up to ~1.5 times what arrives, so the next layer
  up cannot fit while we send the one below. When a subscription is below what it may have and
  nothing holds it back, the allocator asks for padding (`Allocation.padding`, bits/s on top of
  the media) up to the next layer's cost; `PROBE_DURATION` of it with no sign of congestion
  moves the subscription up (the estimate itself grows ~8 %/s, too slowly to wait for it to
  fit), congestion while probing is a failed attempt and backs off.

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
# A probe that pads up to the next layer's rate for this long with no sign of congestion
# (sfu.bwe: a falling estimate, loss) moves the subscription up; congestion within it fails it.
PROBE_DURATION = 4.0  # seconds


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

    def allocate(
        self,
        estimate: int | None,
        congested: bool,
        fixed: int,
        demands: Sequence[Demand],
        now: float,
    ) -> Allocation:
        """Layers for `demands` under `estimate` (bits/s; None: nothing known); `congested`:
        the estimate just fell (or loss is high), so it is a limit to step down to; `fixed`:
        bits/s of what we send the subscriber besides the demands."""
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
                # Optimistic: the top, until congestion says otherwise (a receive-side estimate
                # only shows what was tried, and a new subscription has not tried much).
                first = down[d.key] if congested else d.top
                state = self._states[d.key] = _State(first, now)
            self._step(state, d, down[d.key] if congested else d.top, up[d.key], now)
            layers[d.key] = state.layer
        padding = self._probe(congested, demands, layers, up, now)
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
        congested: bool,
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
            elif congested:
                # A failed attempt: back off as after a step down.
                state.backoff = min(BACKOFF_MAX, state.backoff * 2)
                state.hold_until = now + state.backoff
                state.probe_started = None
                self._probing = None
                return 0
            elif now - started >= PROBE_DURATION:
                # The link carried the next layer's rate that long without a sign of
                # congestion: take it (the estimate itself grows ~8 %/s, far too slowly to wait
                # for).
                state.layer += 1
                state.changed_at = state.last_up = now
                state.up_since = state.probe_started = None
                layers[probing] = state.layer
                self._probing = None
                return 0
            else:
                return max(0, goal - sending)
        if congested:
            return 0
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
