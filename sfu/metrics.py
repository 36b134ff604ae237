"""GET /metrics: media-plane metrics in Prometheus format, read from plain counters at scrape time.

The media plane never calls a metrics library per packet. Publications and Subscriptions keep
integer counters; SfuCollector walks `backend.rooms` when Prometheus scrapes and adds what
MediaTotals kept of the objects that are gone, so a counter never goes down when a participant
leaves. Room hands over every publication and subscription as it leaves the room tree
(`MediaTotals.retire`); their counts can still move until they are closed (a removed
subscription forwards until its renegotiation runs), so they are folded into the totals only
then, by a sweep that runs while any are pending, and at every scrape.

ICE outcomes come from each participant's `iceconnectionstatechange` (MediaTotals.watch):
the selected pair's candidate types when ICE completes (sfu.rtc.candidates), a failure when it
fails. Event-loop lag is how late the loop runs a callback scheduled a fixed interval ahead.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from signaling.metrics import HubCollector

from .datachannels import KINDS as DATA_CHANNELS
from .publication import Publication
from .rtc.candidates import selected_pair_types

if TYPE_CHECKING:
    from signaling.hub import Hub

    from .backend import SfuBackend
    from .participant import Participant
    from .subscription import Subscription

    MediaObject = Publication | Subscription

KINDS: Final = ("audio", "video")  # always exposed, at 0 when nothing flows
SWEEP_INTERVAL: Final = 1.0

# (counter name, kind) -> count
Tally = Counter[tuple[str, str]]


def _count_publication(tally: Tally, pub: Publication) -> None:
    kind = pub.kind
    tally["received_packets", kind] += pub.packets
    tally["received_bytes", kind] += pub.bytes
    tally["plis_sent", kind] += pub.keyframes.sent
    tally["keyframe_replays", kind] += pub.replays
    tally["loss_resyncs", kind] += pub.resyncs


def _count_subscription(tally: Tally, sub: Subscription) -> None:
    kind = sub.publication.kind
    tally["forwarded_packets", kind] += sub.packets
    tally["forwarded_bytes", kind] += sub.payload_bytes
    tally["nacks_received", kind] += sub.nacks
    tally["plis_received", kind] += sub.plis


def _count(tally: Tally, obj: MediaObject) -> None:
    if isinstance(obj, Publication):
        _count_publication(tally, obj)
    else:
        _count_subscription(tally, obj)


class MediaTotals:
    """What the collector needs beyond the live room tree; owned by the backend."""

    def __init__(self) -> None:
        self.retired: Tally = Counter()  # final counts of closed publications and subscriptions
        self.joined = 0
        self.ice_completed: Counter[tuple[str, str]] = Counter()  # by (local, remote) type
        self.ice_failures = 0
        self.ice_restarts: Counter[tuple[str, str]] = Counter()  # by (side, path)
        self.ice_restart_failures: Counter[str] = Counter()  # by side
        self.dead_paths = 0  # clients gone silent while connected (sfu.participant)
        self.speaker_changes = 0  # rankings sent by rooms that closed (sfu.speakers)
        self.data: Counter[tuple[str, str]] = Counter()  # data counts of rooms that closed
        # Out of the room tree, not yet closed: their counts still count. Keyed by id() because
        # the media objects use __slots__ without __weakref__ (and need not be hashable).
        self._leaving: dict[int, MediaObject] = {}
        self._sweep: asyncio.TimerHandle | None = None

    # --- hooks ------------------------------------------------------------------------------

    def watch(self, participant: Participant) -> None:
        """Count a join, and the ICE outcome of its connection."""
        self.joined += 1
        participant.totals = self
        pc = participant.pc
        completed = failed = False

        def on_ice_state() -> None:
            nonlocal completed
            if completed or pc.iceConnectionState != "completed":
                return
            completed = True
            types = selected_pair_types(pc)
            self.ice_completed[types if types is not None else ("unknown", "unknown")] += 1

        def on_state() -> None:
            # A consent expiry closes the connection rather than failing it: both count, unless
            # the participant was closing it itself.
            nonlocal failed
            ended = pc.iceConnectionState == "failed" or pc.connectionState in ("failed", "closed")
            if failed or not ended or participant.closed:
                return
            failed = True
            self.ice_failures += 1

        pc.on("iceconnectionstatechange", on_ice_state)
        pc.on("iceconnectionstatechange", on_state)
        pc.on("connectionstatechange", on_state)

    def retire(self, objects: Iterable[MediaObject]) -> None:
        """These publications/subscriptions left the room tree (Room calls this)."""
        for obj in objects:
            self._leaving[id(obj)] = obj
        self.sweep()
        if self._leaving and self._sweep is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a synchronous test): scrapes sweep
            self._sweep = loop.call_later(SWEEP_INTERVAL, self._sweep_later)

    def _sweep_later(self) -> None:
        self._sweep = None
        self.sweep()
        if self._leaving:
            self._sweep = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep_later)

    def sweep(self) -> None:
        """Fold the closed ones into `retired` and let them go."""
        for key, obj in list(self._leaving.items()):
            if obj.closed:
                _count(self.retired, obj)
                del self._leaving[key]

    def leaving(self) -> list[MediaObject]:
        return list(self._leaving.values())


class SfuCollector(Collector):
    def __init__(self, backend: SfuBackend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        backend = self._backend
        totals = backend.totals
        totals.sweep()
        tally: Tally = Counter(totals.retired)
        counted: dict[int, MediaObject] = {id(obj): obj for obj in totals.leaving()}
        participants = 0
        publications: Counter[str] = Counter()
        subscriptions: Counter[str] = Counter()
        pairs: Counter[tuple[str, str]] = Counter()
        for room in list(backend.rooms.values()):
            for participant in list(room.participants.values()):
                participants += 1
                if (types := selected_pair_types(participant.pc)) is not None:
                    pairs[types] += 1
                for pub in list(participant.publications.values()):
                    publications[pub.kind] += 1
                    counted[id(pub)] = pub
                for sub in list(participant.subscriptions.values()):
                    subscriptions[sub.publication.kind] += 1
                    counted[id(sub)] = sub
        for obj in counted.values():
            _count(tally, obj)

        yield GaugeMetricFamily("aiosfu_rooms", "Open rooms", value=len(backend.rooms))
        yield GaugeMetricFamily(
            "aiosfu_participants", "Participants in all rooms", value=participants
        )
        yield CounterMetricFamily(
            "aiosfu_participants_joined", "Participants that joined a room", value=totals.joined
        )
        yield _by_kind(GaugeMetricFamily, "aiosfu_publications", "Published tracks", publications)
        yield _by_kind(
            GaugeMetricFamily,
            "aiosfu_subscriptions",
            "Tracks forwarded to a participant (one per publication and subscriber)",
            subscriptions,
        )
        for name, doc in (
            ("received_packets", "RTP packets received from publishers"),
            ("received_bytes", "RTP payload bytes received from publishers"),
            ("forwarded_packets", "RTP packets forwarded to subscribers"),
            ("forwarded_bytes", "RTP payload bytes forwarded to subscribers"),
            ("nacks_received", "NACKed sequence numbers reported by subscribers"),
            ("plis_received", "PLI/FIR keyframe requests from subscribers"),
            ("plis_sent", "PLI keyframe requests sent to publishers (after throttling)"),
            ("keyframe_replays", "subscriptions started on a recent keyframe from the ring"),
            ("loss_resyncs", "unrepaired losses from publishers: subscribers wait for a keyframe"),
        ):
            values = {kind: tally[name, kind] for kind in KINDS}
            yield _by_kind(CounterMetricFamily, f"aiosfu_{name}", doc, values)

        completed = CounterMetricFamily(
            "aiosfu_ice_connections",
            "Connections whose ICE completed, by the selected pair's candidate types "
            "(relay ratio: those with a relay side over all)",
            labels=["local_type", "remote_type"],
        )
        for (local, remote), n in sorted(totals.ice_completed.items()):
            completed.add_metric([local, remote], n)
        yield completed
        selected = GaugeMetricFamily(
            "aiosfu_selected_candidate_pairs",
            "Current connections by the selected pair's candidate types",
            labels=["local_type", "remote_type"],
        )
        for (local, remote), n in sorted(pairs.items()):
            selected.add_metric([local, remote], n)
        yield selected
        yield CounterMetricFamily(
            "aiosfu_ice_failures", "Connections whose ICE failed", value=totals.ice_failures
        )
        restarts = CounterMetricFamily(
            "aiosfu_ice_restarts",
            "ICE restarts, by who began them (client, server) and how (in_place, rebuilt)",
            labels=["side", "path"],
        )
        for side in ("client", "server"):
            for path in ("in_place", "rebuilt"):
                restarts.add_metric([side, path], totals.ice_restarts[(side, path)])
        yield restarts
        failures = CounterMetricFamily(
            "aiosfu_ice_restart_failures",
            "ICE restarts whose new checks failed (the old connection was kept)",
            labels=["side"],
        )
        for side in ("client", "server"):
            failures.add_metric([side], totals.ice_restart_failures[side])
        yield failures
        yield CounterMetricFamily(
            "aiosfu_dead_paths",
            "Clients silent for DEAD_PATH_TIMEOUT while connected (the server restarted ICE)",
            value=totals.dead_paths,
        )
        data: Counter[tuple[str, str]] = Counter(totals.data)
        for room in list(backend.rooms.values()):
            data.update(room.data_counts)
        for name, doc in (
            ("received", "Data channel messages participants sent (refused ones included)"),
            ("refused", "Data channel messages refused: grant, size, rate or shape"),
            ("delivered", "Data channel messages delivered (one per receiver)"),
            ("dropped", "Data channel messages not delivered: the receiver's backlog was full"),
        ):
            metric = CounterMetricFamily(f"aiosfu_data_messages_{name}", doc, labels=["channel"])
            for channel in DATA_CHANNELS:
                metric.add_metric([channel], data[name, channel])
            yield metric
        yield CounterMetricFamily(
            "aiosfu_active_speaker_changes",
            "Changes of a room's active speakers (each sent to the room as active_speakers)",
            value=totals.speaker_changes
            + sum(room.speakers.changes for room in list(backend.rooms.values())),
        )


def _by_kind(
    family: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    values: Counter[str] | dict[str, int],
) -> Metric:
    metric = family(name, doc, labels=["kind"])
    for kind in KINDS:
        metric.add_metric([kind], values.get(kind, 0))
    return metric


class LoopLagMonitor(Collector):
    """How late the event loop runs a callback due `interval` seconds ahead: while a callback
    hogs the loop (or the process lacks CPU), every packet and message waits as long."""

    BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

    def __init__(self, interval: float = 0.25) -> None:
        assert interval > 0, "interval must be positive"
        self.interval = interval
        self.counts = [0] * (len(self.BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0
        self.last = 0.0
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        # time.monotonic(), not loop.time(): uvloop's clock has millisecond steps.
        self._due = time.monotonic() + self.interval
        self._handle = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def _tick(self) -> None:
        self.record(max(0.0, time.monotonic() - self._due))
        self._schedule()

    def record(self, lag: float) -> None:
        self.last = lag
        self.total += lag
        self.counts[bisect.bisect_left(self.BUCKETS, lag)] += 1

    def collect(self) -> Iterator[Metric]:
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, n in zip((*map(str, self.BUCKETS), "+Inf"), self.counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "aiosfu_event_loop_lag_seconds",
            f"Delay of a callback scheduled every {self.interval:g}s past its due time",
            buckets=buckets,
            sum_value=self.total,
        )
        yield GaugeMetricFamily(
            "aiosfu_event_loop_lag_last_seconds",
            "The latest event-loop lag measured",
            value=self.last,
        )


def add_routes(app: web.Application, backend: SfuBackend, hub: Hub) -> None:
    """Serve GET /metrics from a registry of this app's own (several apps can share a process,
    as in the tests), and run the loop-lag monitor while the app runs."""
    registry = CollectorRegistry()
    registry.register(SfuCollector(backend))
    registry.register(HubCollector(hub.stats, hub.session_count))
    lag = LoopLagMonitor()
    registry.register(lag)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes
    PlatformCollector(registry=registry)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def start_lag(_: web.Application) -> None:
        lag.start()

    async def stop_lag(_: web.Application) -> None:
        lag.stop()

    app.router.add_get("/metrics", metrics)
    app.on_startup.append(start_lag)
    app.on_cleanup.append(stop_lag)
