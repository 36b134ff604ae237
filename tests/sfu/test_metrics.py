"""GET /metrics: values move as they should while participants join, send and leave."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sfu.media import TestPatternTrack
from sfu.metrics import LoopLagMonitor, MediaTotals
from sfu.server import RunningServer
from signaling.limits import LIMITS
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: RunningServer) -> Samples:
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


async def test_a_join_raises_participants_by_one_and_a_leave_lowers_it(
    server: RunningServer, make_client: MakeClient
) -> None:
    before = await scrape(server)
    assert value(before, "aiosfu_participants") == 0 and value(before, "aiosfu_rooms") == 0

    alice = await make_client("m1", name="alice")
    after_alice = await scrape(server)
    assert value(after_alice, "aiosfu_participants") == 1
    assert value(after_alice, "aiosfu_rooms") == 1
    assert value(after_alice, "aiosfu_signaling_sessions") == 1

    bob = await make_client("m2", name="bob")
    after_bob = await scrape(server)
    assert value(after_bob, "aiosfu_participants") == 2
    assert value(after_bob, "aiosfu_rooms") == 2
    assert value(after_bob, "aiosfu_participants_joined_total") == 2

    await bob.close()

    async def bob_gone() -> str:
        n = value(await scrape(server), "aiosfu_participants")
        return "" if n == 1 else f"{n} participants after bob left"

    await eventually_async(bob_gone)
    final = await scrape(server)
    assert value(final, "aiosfu_rooms") == 1
    assert value(final, "aiosfu_participants_joined_total") == 2, "a counter never drops"
    await alice.close()
    await eventually_async(lambda: _expect(server, "aiosfu_participants", 0))


async def _expect(server: RunningServer, name: str, expected: float) -> str:
    got = value(await scrape(server), name)
    return "" if got == expected else f"{name} = {got}, expected {expected}"


async def test_media_shows_in_publications_keyframe_requests_and_candidate_types(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("media", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    bob = await make_client("media", name="bob", decode=False)
    remote = await bob.next_track()
    await recv(remote.track)

    samples = await scrape(server)
    assert value(samples, "aiosfu_publications", kind="video") == 1
    assert value(samples, "aiosfu_subscriptions", kind="video") == 1
    assert value(samples, "aiosfu_subscriptions", kind="audio") == 0
    # The new subscription either asked alice for a keyframe or started on her recent one.
    started = value(samples, "aiosfu_plis_sent_total", kind="video")
    started += value(samples, "aiosfu_keyframe_replays_total", kind="video")
    assert started >= 1, "the new subscription never got a keyframe"
    # Loopback: both ends of both connections are host candidates.
    host = {"local_type": "host", "remote_type": "host"}
    assert value(samples, "aiosfu_selected_candidate_pairs", **host) == 2
    assert value(samples, "aiosfu_ice_connections_total", **host) == 2
    assert value(samples, "aiosfu_ice_failures_total") == 0


async def test_forwarded_packets_move_while_media_flows_and_stay_after_a_leave(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("flow", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    bob = await make_client("flow", name="bob", decode=False)
    remote = await bob.next_track()
    await recv(remote.track)
    first = await scrape(server)

    async def forwarding() -> str:
        now = await scrape(server)
        fwd = value(now, "aiosfu_forwarded_packets_total", kind="video")
        fwd_bytes = value(now, "aiosfu_forwarded_bytes_total", kind="video")
        rcv = value(now, "aiosfu_received_packets_total", kind="video")
        was = value(first, "aiosfu_forwarded_packets_total", kind="video")
        if fwd > was and fwd_bytes > 0 and rcv > 0:
            return ""
        return f"forwarded {was} -> {fwd} packets ({fwd_bytes} bytes), received {rcv}"

    await eventually_async(forwarding, timeout=5)
    before_leave = await scrape(server)
    await bob.close()
    await eventually_async(lambda: _no_subscriptions(server))
    after_leave = await scrape(server)
    for name in ("aiosfu_forwarded_packets_total", "aiosfu_forwarded_bytes_total"):
        kept, had = value(after_leave, name, kind="video"), value(before_leave, name, kind="video")
        assert kept >= had > 0, f"{name} dropped from {had} to {kept} when bob left"


async def _no_subscriptions(server: RunningServer) -> str:
    n = value(await scrape(server), "aiosfu_subscriptions", kind="video")
    return "" if n == 0 else f"{n} video subscriptions left"


async def test_counts_of_a_participant_that_left_are_kept(
    server: RunningServer, make_client: MakeClient
) -> None:
    """The totals walk the room tree; what leaves it must be carried over, not dropped."""
    alice = await make_client("keep", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    bob = await make_client("keep", name="bob", decode=False)
    await bob.next_track()
    [pub] = [pub for p in server.backend.participants() for pub in p.publications.values()]
    [sub] = [s for p in server.backend.participants() for s in p.subscriptions.values()]
    await eventually(lambda: "" if sub.ready else "the subscription's sender has not started")
    assert sub._output is not None
    sub._output.packets += 1_000_000  # far above what forwarding adds meanwhile
    sub.nacks += 7
    pub.layers[0].packets += 2_000_000
    before = await scrape(server)
    assert value(before, "aiosfu_forwarded_packets_total", kind="video") >= 1_000_000
    assert value(before, "aiosfu_received_packets_total", kind="video") >= 2_000_000

    await bob.close()  # bob's subscription leaves the tree
    await eventually_async(lambda: _no_subscriptions(server))
    await alice.close()  # and now alice's publication
    await eventually_async(lambda: _expect(server, "aiosfu_participants", 0))
    after = await scrape(server)
    for name in ("aiosfu_forwarded_packets_total", "aiosfu_received_packets_total"):
        kept, had = value(after, name, kind="video"), value(before, name, kind="video")
        assert kept >= had, f"{name} dropped from {had} to {kept}"
    assert value(after, "aiosfu_nacks_received_total", kind="video") >= 7
    assert value(after, "aiosfu_publications", kind="video") == 0
    assert not server.backend.totals.leaving(), "closed objects are not held on to"


async def test_fixed_series_exist_at_zero_and_the_loop_lag_is_measured(
    server: RunningServer,
) -> None:
    async def lag_measured() -> str:
        count = value(await scrape(server), "aiosfu_event_loop_lag_seconds_count")
        return "" if count >= 2 else f"{count} loop-lag samples"

    await eventually_async(lag_measured, timeout=3, interval=0.1)
    samples = await scrape(server)
    for name in (
        "aiosfu_reconnects_total",
        "aiosfu_resumes_total",
        "aiosfu_rate_limit_rejections_total",
        "aiosfu_ice_failures_total",
        "aiosfu_dead_paths_total",
        "aiosfu_active_speaker_changes_total",
    ):
        assert value(samples, name) == 0, name
    for limit in LIMITS:
        assert value(samples, "aiosfu_limit_refusals_total", limit=limit) == 0, limit
    for side in ("client", "server"):
        assert value(samples, "aiosfu_ice_restart_failures_total", side=side) == 0
        for path in ("in_place", "rebuilt"):
            assert value(samples, "aiosfu_ice_restarts_total", side=side, path=path) == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    url = f"http://127.0.0.1:{server.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200 and await response.text() == "ok"


def test_loop_lag_buckets_are_cumulative() -> None:
    lag = LoopLagMonitor()
    for seconds in (0.0005, 0.003, 0.003, 7.0):
        lag.record(seconds)
    [histogram, last] = list(lag.collect())
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert buckets["0.001"] == 1 and buckets["0.005"] == 3 and buckets["2.5"] == 3
    assert buckets["+Inf"] == 4 and last.samples[0].value == 7.0


class _Closable:
    """Stands in for a Subscription in MediaTotals' bookkeeping."""

    def __init__(self) -> None:
        self.closed = False
        self.packets = self.payload_bytes = self.nacks = self.plis = 0
        self.publication = type("Pub", (), {"kind": "video"})()


def test_retired_counts_are_folded_once_closed() -> None:
    totals = MediaTotals()
    sub = _Closable()
    sub.packets = 10
    totals.retire([sub])  # type: ignore[list-item]
    assert len(totals.leaving()) == 1 and not totals.retired
    sub.packets = 12  # still forwarding until its renegotiation closes it
    sub.closed = True
    totals.sweep()
    assert not totals.leaving() and totals.retired["forwarded_packets", "video"] == 12
