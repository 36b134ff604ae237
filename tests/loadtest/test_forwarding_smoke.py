"""The forwarding benchmark's main routine, small: 1 publisher, 2 subscribers, 2 s measured."""

from __future__ import annotations

import math
import os

from loadtest.forwarding import check, format_table, run_benchmark
from loadtest.options import BenchConfig


async def test_forwarding_benchmark_produces_sane_figures() -> None:
    config = BenchConfig(subscribers=[2], duration=2.0, warmup=1.0, verbose=False)
    affinity = os.sched_getaffinity(0)
    [result] = await run_benchmark(config)
    assert os.sched_getaffinity(0) == affinity, "the bench process's affinity is restored"
    # Pinned by default where there are 2 CPUs: the server on the lowest one.
    assert result.server_cpus == ([min(affinity)] if len(affinity) >= 2 else None)
    print(format_table([result]))

    check([result])  # the benchmark's own correctness check
    assert result.subscribers == 2 and result.subscribers_with_frames == 2
    assert result.forwarded_packets > 0 and result.forwarded_pps > 0
    assert result.server_cpu_s > 0 and result.us_per_packet > 0
    assert math.isfinite(result.us_per_packet) and math.isfinite(result.loss_pct)
    assert 0 <= result.loss_pct <= 100
    assert result.fps_per_subscriber > 0 and result.publisher_pps > 0
    assert result.started_on_keyframe == 2, "the server forwards from a keyframe on"
    assert result.server_rss_mb > 0
    # Nearest-rank percentiles (loadtest.stats): of 2 join times, p95 is the larger one.
    assert result.join_p50_s <= result.join_p95_s == result.join_max_s


async def test_with_simulcast_input_each_subscriber_gets_its_layer() -> None:
    config = BenchConfig(subscribers=[3], duration=2.0, warmup=1.0, verbose=False, simulcast=True)
    [result] = await run_benchmark(config)
    check([result])
    assert result.simulcast and result.subscribers_with_frames == 3
    assert result.started_on_keyframe == 3 and result.loss_pct < 5
    # l, m and h: about 0.1 + 1/3 + 1 of the top layer's rate, far from 3 x the top one.
    assert result.forwarded_pps < 2 * result.publisher_pps
