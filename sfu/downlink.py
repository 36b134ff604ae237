"""Downlink: one subscriber's bandwidth, and what it decides for the subscriber's `auto` layers.

Wires the parts together, once per Participant: the ingress of the subscriber's transport tells
it the report blocks and REMBs the subscriber sends (`loss()`, `remb()`: sfu.rtc.rtcp's
ReceiverFeedback) into a DownlinkEstimate (sfu.bwe); every tick (sfu.backend's report timer) it
measures what we send the subscriber and what each simulcast layer costs, asks the
LayerAllocator (sfu.allocation) for the `auto` layers, tells each subscription its ceiling
(`Subscription.set_auto_layer`), and paces the padding a probe asks for (duplicates of packets
the subscriber already has, sent every PAD_INTERVAL while a probe runs). Never per packet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

from signaling.log import ContextLogger

from .allocation import Allocation, Demand, LayerAllocator
from .bwe import DownlinkEstimate

if TYPE_CHECKING:
    from .layer import Layer
    from .subscription import Subscription

RATE_WINDOW = 1.0  # seconds over which send and layer rates are averaged (EWMA time constant)
PAD_INTERVAL = 0.02  # seconds between two bursts of padding while probing
# What each layer costs when it never flowed (paused before anyone measured it): LiveKit's
# ladder for 320x180 / 640x360 / 1280x720, in bits/s. A measured rate replaces it.
GUESSES = (150_000, 500_000, 1_500_000)


class _Rate:
    """bits/s of a byte counter, smoothed over about RATE_WINDOW seconds."""

    __slots__ = ("_at", "_bytes", "value")

    def __init__(self) -> None:
        self._bytes: int | None = None
        self._at = 0.0
        self.value = 0.0

    def sample(self, total_bytes: int, now: float) -> float:
        if self._bytes is not None and now > self._at:
            dt = now - self._at
            instant = (total_bytes - self._bytes) * 8 / dt
            weight = min(1.0, dt / RATE_WINDOW)
            self.value += (instant - self.value) * weight
        self._bytes, self._at = total_bytes, now
        return self.value


class Downlink:
    def __init__(
        self, subscriptions: Callable[[], Iterable[Subscription]], log: ContextLogger
    ) -> None:
        self._subscriptions = subscriptions
        self.log = log
        self.estimate = DownlinkEstimate()
        self.allocator = LayerAllocator()
        self.last: Allocation | None = None
        self.last_estimate: int | None = None
        self.sending = 0.0  # bits/s we send the subscriber (media, retransmissions, padding)
        self.padding = 0  # bits/s of padding asked for now
        self._sent = _Rate()
        self._sent_by: dict[Subscription, _Rate] = {}
        self._layer_rates: dict[Layer, _Rate] = {}
        self._last_cost: dict[Layer, float] = {}  # bits/s of a layer when it last flowed
        self._pad_timer: asyncio.TimerHandle | None = None
        self._pad_target: Subscription | None = None
        self._closed = False

    # --- ReceiverFeedback (from the ingress, per RTCP packet) ------------------------------------

    def loss(self, ssrc: int, fraction: int) -> None:
        self.estimate.loss(ssrc, fraction, time.monotonic())

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        self.estimate.remb(bitrate, ssrcs, time.monotonic())

    # --- every tick ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if self._closed:
            return
        subs = [s for s in self._subscriptions() if s.live]
        if not any(s.publication.simulcast and s.preferred is None for s in subs):
            # Nothing to choose a layer for: the estimate keeps its reports, nothing else runs
            # (a server forwarding plain video to many subscribers pays nothing per tick).
            if self.last is not None or self.padding:
                self.last, self.padding, self._sent_by = None, 0, {}
            return
        sent_total = sum(s.payload_bytes + s.padded for s in subs)
        self.sending = self._sent.sample(sent_total, now)
        self._sent_by = {s: self._sent_by.get(s) or _Rate() for s in subs}
        sub_rates = {s: self._sent_by[s].sample(s.payload_bytes, now) for s in subs}
        estimate = self.estimate.update(int(self.sending), now)
        # Only the layers of what we forward now: the others' publications may be gone.
        layers = {layer for s in subs for layer in s.publication.layers}
        self._layer_rates = {k: v for k, v in self._layer_rates.items() if k in layers}
        self._last_cost = {k: v for k, v in self._last_cost.items() if k in layers}
        demands, fixed = [], 0.0
        for sub in subs:
            pub = sub.publication
            if pub.kind == "video" and pub.simulcast and sub.preferred is None:
                demands.append(Demand(sub, self._costs(sub, now), top=len(pub.layers) - 1))
            else:
                fixed += sub_rates[sub]
        congested = self.estimate.congested(now)
        allocation = self.allocator.allocate(estimate, congested, int(fixed), demands, now)
        for key, layer in allocation.layers.items():
            cast("Subscription", key).set_auto_layer(layer)
        if estimate != self.last_estimate and (
            estimate is None
            or self.last_estimate is None
            or abs(estimate - self.last_estimate) > 0.1 * self.last_estimate
        ):
            self.log.debug("downlink estimate %s bit/s, sending %d", estimate, self.sending)
            self.last_estimate = estimate
        self.last = allocation
        self._pad(allocation)

    def _costs(self, sub: Subscription, now: float) -> tuple[int, ...]:
        costs = list(GUESSES)
        for layer in sub.publication.layers:
            rate = self._layer_rates.setdefault(layer, _Rate()).sample(layer.bytes, now)
            if layer.flowing and rate > 0:
                self._last_cost[layer] = rate
            if layer in self._last_cost:
                costs[layer.index] = int(self._last_cost[layer])
        return tuple(costs)

    # --- padding, to probe ---------------------------------------------------------------------

    def _pad(self, allocation: Allocation) -> None:
        target = allocation.probing
        self.padding = allocation.padding
        self._pad_target = cast("Subscription", target) if target is not None else None
        if self.padding and self._pad_timer is None:
            self._pad_timer = asyncio.get_running_loop().call_later(PAD_INTERVAL, self._pad_now)

    def _pad_now(self) -> None:
        self._pad_timer = None
        target = self._pad_target
        if self._closed or not self.padding or target is None or target.closed:
            return
        target.pad(int(self.padding * PAD_INTERVAL / 8))
        self._pad_timer = asyncio.get_running_loop().call_later(PAD_INTERVAL, self._pad_now)

    def close(self) -> None:
        self._closed = True
        if self._pad_timer is not None:
            self._pad_timer.cancel()
            self._pad_timer = None
        self._sent_by.clear()
        self._layer_rates.clear()
