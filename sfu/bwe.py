"""DownlinkEstimate: how many bits/s one subscriber can take, from what the subscriber tells us.

Where the estimate comes from (written down, since the choice costs on the per-packet path):
the subscriber runs a receive-side estimator over the `abs-send-time` header extension we stamp on
each forwarded video packet, and sends REMB (Chromium, Firefox and aiortc all do, once
abs-send-time is negotiated, which aiortc's own offers always do). The alternative, transport-wide
congestion control on our sending side, would put a transport-wide sequence number and a send-time
record on every packet to every subscriber, and run a delay-based estimator in Python over every
packet's feedback: several µs per forwarded packet on a path that costs ~15 today. With REMB the
estimator runs in the subscriber (C++ in browsers), we pay one 8-byte extension and one clock
read per forwarded packet, and aiortc subscribers (which have no transport-cc) are covered too.
Its cost: a receive-side estimate grows only up to ~1.5 times what arrives, so stepping up a
layer needs padding first (sfu.allocation asks for it), and it grows ~8 %/s.

A receive-side estimate grows only with what arrives, and falls only on congestion (to ~85 % of
what arrived): its value is a limit to step down to only when it has just fallen
(`congested()`); otherwise it is the most that was proven, which padding can raise (probing).

Receiver-report loss is the floor that every client gives, REMB or not: like libwebrtc's
loss-based controller, more than 10 % lost cuts the estimate to what we send times
(1 - loss/2), less than 2 % lets that cap grow 8 %/s until it no longer binds, in between it
holds. The estimate is the lower of the two.

A REMB names the SSRCs it covers: Chromium sends one for everything it receives, aiortc one per
receiver (for its own stream). Each is kept until another covers one of its SSRCs, and the
estimate is their sum. Sync, time passed in; sfu.participant feeds it from the ingress.
"""

from __future__ import annotations

REMB_TIMEOUT = 5.0  # seconds: a REMB older than this no longer counts
LOSS_TIMEOUT = 3.0  # seconds: a receiver report's loss older than this no longer counts
HIGH_LOSS = 26  # of 256: more than 10 % lost
LOW_LOSS = 5  # of 256: less than 2 % lost
DECREASE_INTERVAL = 0.3  # seconds between two loss-based decreases
GROWTH_PER_SECOND = 1.08
# A receive-side estimate never falls because less arrives (it only stops growing): it falls on
# congestion, to ~85 % of what arrived. A REMB below DROP times its source's highest of the last
# DROP_WINDOW seconds is such a fall (a smaller dip is the estimator's noise: seen here, 12 %).
DROP = 0.8
DROP_WINDOW = 3.0  # seconds
CONGESTION_HOLD = 1.0  # seconds a congestion sign counts for


class _Source:
    """One REMB sender's view (Chromium: one for the transport; aiortc: one per stream)."""

    __slots__ = ("at", "bitrate", "history", "ssrcs")

    def __init__(self, ssrcs: frozenset[int], bitrate: int, at: float) -> None:
        self.ssrcs, self.bitrate, self.at = ssrcs, bitrate, at
        self.history: list[tuple[float, int]] = [(at, bitrate)]


class DownlinkEstimate:
    __slots__ = (
        "_last_decrease",
        "_last_growth",
        "_loss",
        "_new_report",
        "_sources",
        "congested_at",
        "loss_cap",
    )

    def __init__(self) -> None:
        self._sources: list[_Source] = []
        self._loss: dict[int, tuple[int, float]] = {}  # SSRC -> (fraction lost /256, when)
        self.loss_cap: float | None = None  # the loss-based limit, when one binds
        self.congested_at = -1e9  # the latest sign of congestion (a REMB's fall, high loss)
        self._last_decrease = -1e9
        self._last_growth: float | None = None
        self._new_report = False  # a report came since the last update(): loss acts once

    def remb(self, bitrate: int, ssrcs: list[int], now: float) -> None:
        covered = frozenset(ssrcs)
        source = _Source(covered, bitrate, now)
        kept = []
        for old in self._sources:
            if old.ssrcs & covered:
                source.history += old.history  # the same receiver, another SSRC list
            elif now - old.at < REMB_TIMEOUT:
                kept.append(old)
        source.history = [(at, b) for at, b in source.history if now - at <= DROP_WINDOW]
        if bitrate < DROP * max(b for _, b in source.history):
            self.congested_at = now
        kept.append(source)
        self._sources = kept

    def loss(self, ssrc: int, fraction: int, now: float) -> None:
        """A report block's fraction lost (in 256ths) for one of the streams we send."""
        self._loss[ssrc] = (fraction, now)
        self._new_report = True
        if fraction > HIGH_LOSS:
            self.congested_at = now

    def congested(self, now: float) -> bool:
        """A sign of congestion lately: the estimate is a limit to step down to, not only the
        most that was ever tried."""
        return now - self.congested_at < CONGESTION_HOLD

    def remb_total(self, now: float) -> int | None:
        fresh = [s.bitrate for s in self._sources if now - s.at < REMB_TIMEOUT]
        return sum(fresh) if fresh else None

    def worst_loss(self, now: float) -> int | None:
        fresh = [f for f, at in self._loss.values() if now - at < LOSS_TIMEOUT]
        return max(fresh) if fresh else None

    def update(self, sending: int, now: float) -> int | None:
        """The estimate now, in bits/s (None: nothing known yet, no limit); `sending` is what we
        send the subscriber (bits/s) lately. Called on a timer and on each report."""
        remb = self.remb_total(now)
        loss = self.worst_loss(now)
        new_report, self._new_report = self._new_report, False
        if loss is not None and loss > HIGH_LOSS:
            if new_report and now - self._last_decrease >= DECREASE_INTERVAL:
                cut = sending * (1 - loss / 512)
                self.loss_cap = cut if self.loss_cap is None else min(self.loss_cap, cut)
                self._last_decrease = now
            self._last_growth = now
        elif self.loss_cap is not None and (loss is None or loss < LOW_LOSS):
            since = now - (self._last_growth if self._last_growth is not None else now)
            self.loss_cap *= GROWTH_PER_SECOND ** min(since, 1.0)
            self._last_growth = now
            # It no longer binds once above the REMB, or well above what we send.
            if (remb is not None and self.loss_cap > remb) or self.loss_cap > 2 * sending + 50_000:
                self.loss_cap = None
        else:
            self._last_growth = now
        if self.loss_cap is None:
            return remb
        cap = int(self.loss_cap)
        return cap if remb is None else min(remb, cap)
