"""Side-by-side benchmark: aiosfu and Janus VideoRoom, one scenario, one run, one machine.

    python -m loadtest.sidebyside [--subscribers 10 --subscribers 25 ...] (default: 10 25 50 100)
        [--duration 20] [--warmup 5] [--servers aiosfu,janus] [--event-loops 2] [--rounds 1]
        [--quiet 25] [--quiet-timeout 120] [--pin | --no-pin] [--json PATH]
        [--bitrate 1000000] [--fps 30] [--width 640 --height 480]

The scenario's options are loadtest.forwarding's (loadtest.options declares them once).

Needs root: it re-executes itself inside a network namespace of its own (loadtest.netns: lo,
a veth pair with both ends inside and 127.0.0.1/32 on one of them, IPv6 off, no route out,
checked before anything starts). Both servers run in that namespace, one at a time.

CPU pinning (`--pin`, the default when this process may use 2 CPUs or more; `--no-pin`): each
server process, all its threads, runs on one CPU (the lowest this process may use) and this
process (publisher and subscribers) on the others; the report's first line and the JSON's
`environment.pinning` say whether it was on and which CPUs.

The scenario, for each N and each server, a fresh server process every time:
1 publisher sending a pre-encoded VP8 clip (~1 Mbps, 640x480, 30 fps; loadtest.clip) and N
aiortc subscribers that never decode, all in this process, joining 5 at a time; once every
subscriber has a keyframe, `--warmup` seconds, then `--duration` seconds measured. The servers
alternate (aiosfu then Janus at one N, Janus then aiosfu at the next) so that slow drifts of the
shared machine do not favour one of them. Per run it reports (see loadtest.forwarding):

- server CPU µs per forwarded packet: utime+stime of the server process (all its threads) over
  the window, divided by the RTP packets (media + RTX) all subscribers received;
- forwarded packets/s; loss, both as packets missing from the subscribers' sequence numbers and
  as frames the publisher sent that the mean subscriber never got (a server that drops whole
  frames and renumbers what it sends leaves no sequence gap); join time p50/p95 (WebSocket
  opened -> first keyframe); server RSS growth per subscriber (RSS at the end minus RSS with the
  publisher alone, / N); this process's CPU, and the CPU everyone else used meanwhile.

The machine is shared: before each run it waits (up to --quiet-timeout s) until other processes
use less than --quiet % of a core, and marks a run during which they used more. With --rounds R
each (server, N) runs R times and the table shows, per (server, N), the run others disturbed
least (chosen by that load, never by the figures); the JSON has every run.

"Most subscribers one core holds at < 1 % loss": with pinning the server has exactly one core,
so the largest N this run drove with < 1 % loss is a measured lower bound of it; a lower bound
only, because the subscribers are Python too (on the other core(s)) and may give up first.
Without pinning the server shares the cores with the clients and that N is looser still. The
extrapolation 1e6 / (µs per packet x packets/s per subscriber) at the largest N (one core's
worth of server CPU spent at that per-packet cost) is given next to it, labelled as such.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sys
import time
import traceback
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from typing import Any

from . import netns, options, procstat
from .clip import EncodedClip
from .forwarding import (
    Published,
    Result,
    Subscriber,
    drive,
    format_line,
    make_clips,
    measure,
    post_mortem,
)
from .janus import (
    JanusProcess,
    JanusPublisher,
    JanusSettings,
    describe_config,
    janus_binary,
    janus_version,
    subscribe,
)
from .options import BenchConfig
from .report import emit, environment
from .stats import StreamStats

SERVERS = ("aiosfu", "janus")
DEFAULT_SUBSCRIBERS = [10, 25, 50, 100]
LOSS_LIMIT_PCT = 1.0
PAUSE_BETWEEN_RUNS = 2.0  # let the last run's sockets and processes go before the next


@dataclass
class SideBySideConfig:
    bench: BenchConfig = field(default_factory=lambda: BenchConfig(list(DEFAULT_SUBSCRIBERS)))
    servers: list[str] = field(default_factory=lambda: list(SERVERS))
    janus: JanusSettings = field(default_factory=JanusSettings)
    rounds: int = 1  # runs of each (server, N); the report shows the least disturbed one
    # Before each run, wait (up to quiet_timeout s) until others use less than quiet_pct % of
    # a core; a run during which they used more is marked as disturbed.
    quiet_pct: float = 25.0
    quiet_timeout: float = 120.0


async def _join_janus(
    url: str, feed: int, index: int, room: int, simulcast: bool = False
) -> Subscriber:
    """With `simulcast`, subscriber i takes substream i mod 3: l, m, h, l... (as aiosfu's)."""
    started = time.monotonic()
    subscription = await subscribe(url, feed, room=room)
    if simulcast:
        await subscription.set_substream(index % 3)
    stats = StreamStats("video", subscription.receiver, subscription.track).start()
    return Subscriber(f"sub{index}", stats, started, subscription.close)


async def measure_janus(
    n: int,
    clips: Sequence[EncodedClip],
    config: BenchConfig,
    settings: JanusSettings,
    server_cpus: AbstractSet[int] | None = None,
) -> Result:
    """measure() of loadtest.forwarding, against Janus: same publisher, subscribers, window."""
    async with JanusProcess(settings, cpus=server_cpus) as janus:
        published = Published(clips)
        publisher: JanusPublisher | None = None
        try:
            publisher = await JanusPublisher.start(janus.url, published.track, room=settings.room)
            assert publisher.sender is not None
            published.sending(publisher.sender)
            feed = publisher.feed
            return await drive(
                janus,
                published,
                n,
                lambda i: _join_janus(janus.url, feed, i, settings.room, config.simulcast),
                config,
                server_cpus=server_cpus,
            )
        except Exception as exc:
            exc.add_note(await post_mortem(janus))
            raise
        finally:
            if publisher is not None:
                await publisher.close()
            published.stop()


@dataclass
class Outcome:
    results: dict[str, list[Result]]
    failures: dict[str, dict[int, str]]  # server -> N -> what went wrong


async def machine_busy_pct(interval: float = 1.0) -> float:
    """CPU the whole machine used over `interval`, in % of one core."""
    busy0, _ = procstat.machine_cpu_seconds()
    await asyncio.sleep(interval)
    busy1, _ = procstat.machine_cpu_seconds()
    return 100 * (busy1 - busy0) / interval


async def wait_for_quiet(threshold_pct: float, timeout: float) -> None:
    """Between runs nothing of ours works: what the machine does is someone else's load."""
    deadline = time.monotonic() + timeout
    busy = await machine_busy_pct()
    if busy < threshold_pct:
        return
    print(f"  others use {busy:.0f} % of a core: waiting up to {timeout:g}s for less", flush=True)
    while busy >= threshold_pct and time.monotonic() < deadline:
        busy = await machine_busy_pct(2.0)
    if busy >= threshold_pct:
        print(f"  still {busy:.0f} %: running anyway (the run will be marked)", flush=True)


async def run(config: SideBySideConfig) -> Outcome:
    """Every (server, N), `rounds` times; pinned as config.bench.pin says (affinity restored)."""
    pinning = procstat.plan_pinning(config.bench.pin)
    print(procstat.describe_pinning(pinning), flush=True)
    clips = make_clips(config.bench)
    outcome = Outcome({s: [] for s in config.servers}, {s: {} for s in config.servers})
    with procstat.pinned_self(None if pinning is None else pinning.bench):
        await _run_all(config, clips, outcome, None if pinning is None else pinning.server)
    return outcome


async def _run_all(
    config: SideBySideConfig,
    clips: Sequence[EncodedClip],
    outcome: Outcome,
    server_cpus: AbstractSet[int] | None,
) -> None:
    for round_ in range(config.rounds):
        for step, n in enumerate(config.bench.subscribers):
            # Alternate who goes first, so that a drift of the shared machine favours no one.
            order = config.servers if (step + round_) % 2 == 0 else config.servers[::-1]
            for server in order:
                print(f"{server}, N={n} (round {round_ + 1}/{config.rounds}):", flush=True)
                await wait_for_quiet(config.quiet_pct, config.quiet_timeout)
                try:
                    if server == "aiosfu":
                        result = await measure(n, clips, config.bench, server_cpus)
                    else:
                        result = await measure_janus(
                            n, clips, config.bench, config.janus, server_cpus
                        )
                except Exception as exc:
                    # One failed run must not cost the others: report it and go on.
                    traceback.print_exc()
                    outcome.failures[server][n] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                else:
                    print(f"  {format_line(result)}", flush=True)
                    outcome.results[server].append(result)
                await asyncio.sleep(PAUSE_BETWEEN_RUNS)


def least_disturbed(results: Sequence[Result]) -> list[Result]:
    """One run per N: the one during which others used the least CPU (not the best figures)."""
    best: dict[int, Result] = {}
    for r in results:
        if r.subscribers not in best or r.other_load_pct < best[r.subscribers].other_load_pct:
            best[r.subscribers] = r
    return [best[n] for n in sorted(best)]


# --- reporting ---------------------------------------------------------------------------------


@dataclass
class Capacity:
    """How many subscribers one core could hold: one lower bound, one extrapolation."""

    measured_n: int | None  # largest N run here with loss < 1 % (None: none was)
    measured_loss_pct: float
    extrapolated_n: float  # 1e6 / (µs per packet x packets/s per subscriber), at largest N
    from_n: int
    us_per_packet: float
    pps_per_subscriber: float


def loss(r: Result) -> float:
    """Packets missing by sequence number, or whole frames never forwarded: the worse."""
    return max(r.loss_pct, r.frame_shortfall_pct)


def capacity(results: Sequence[Result]) -> Capacity:
    good = [r for r in results if r.subscribers and loss(r) < LOSS_LIMIT_PCT]
    best = max(good, key=lambda r: r.subscribers, default=None)
    largest = max(results, key=lambda r: r.subscribers)
    pps = largest.forwarded_pps / largest.subscribers if largest.subscribers else math.nan
    return Capacity(
        measured_n=None if best is None else best.subscribers,
        measured_loss_pct=math.nan if best is None else loss(best),
        extrapolated_n=1e6 / (largest.us_per_packet * pps),
        from_n=largest.subscribers,
        us_per_packet=largest.us_per_packet,
        pps_per_subscriber=pps,
    )


@functools.cache
def _janus_version() -> str:
    return janus_version()


def _label(server: str, config: SideBySideConfig) -> str:
    if server == "janus":
        return f"Janus {_janus_version()} (event_loops = {config.janus.event_loops})"
    return "aiosfu"


def format_report(outcome: Outcome, config: SideBySideConfig, env: dict[str, Any]) -> str:
    """A Markdown table (it reads as plain text too) and the capacity lines."""
    results = {server: least_disturbed(rows) for server, rows in outcome.results.items()}
    disturbed = False
    lines = [
        f"{env['date_utc']}, aiosfu {env['aiosfu']}; {env['nproc']} cores ({env['cpu_model']}), "
        f"Python {env['python']}, aiortc {env['aiortc']}; 1 publisher VP8 "
        f"{config.bench.width}x{config.bench.height} {config.bench.fps} fps "
        f"~{config.bench.bitrate // 1000} kbps"
        + (
            " as the top of three simulcast layers (l, m at 1/4, 1/2 the size and 1/10, 1/3 "
            "the bitrate), subscribers on l, m, h in turn"
            if config.bench.simulcast
            else ""
        )
        + ", N non-decoding aiortc subscribers, "
        f"{config.bench.duration:g} s measured after {config.bench.warmup:g} s warm-up; "
        f"{env['pinning_text']}",
        "",
        "| server | N | server CPU µs/forwarded pkt | forwarded pkt/s | server CPU % of "
        + ("its core " if env["pinning"] else "a core ")
        + "| packet loss % | frames not delivered % | join p50 / p95 ms "
        "| RSS growth KB/subscriber | client CPU % | others' CPU % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n in config.bench.subscribers:
        for server in config.servers:
            for r in (r for r in results[server] if r.subscribers == n):
                mark = " †" if r.other_load_pct > config.quiet_pct else ""
                disturbed = disturbed or bool(mark)
                lines.append(
                    f"| {_label(server, config)} | {r.subscribers} | {r.us_per_packet:.1f} "
                    f"| {r.forwarded_pps:.0f} | {r.server_cpu_pct:.1f} | {r.loss_pct:.2f} "
                    f"| {r.frame_shortfall_pct:.1f} "
                    f"| {r.join_p50_s * 1000:.0f} / {r.join_p95_s * 1000:.0f} "
                    f"| {r.rss_per_subscriber_kb:.0f} "
                    # Tick-granular counters can make an idle machine read -1 %: show 0.
                    f"| {r.bench_cpu_pct:.0f} | {max(0.0, r.other_load_pct):.0f}{mark} |"
                )
            if (failure := outcome.failures[server].get(n)) is not None:
                lines.append(f"| {_label(server, config)} | {n} | run failed: {failure} |")
    if config.rounds > 1:
        lines += ["", f"{config.rounds} runs of each; shown: the one others disturbed least."]
    if disturbed:
        lines += [
            "",
            f"† other processes used more than {config.quiet_pct:g} % of a core during this "
            f"run: its figures are disturbed.",
        ]
    pinned = env["pinning"]
    lines += [
        "",
        f"Most subscribers one core holds at < {LOSS_LIMIT_PCT:g} % loss"
        + (
            f" (the server pinned to CPU {procstat.format_cpus(pinned['server_cpus'])}, the "
            f"clients on CPU {procstat.format_cpus(pinned['bench_cpus'])}):"
            if pinned
            else " (no pinning: the server shared every core with the clients):"
        ),
    ]
    for server in config.servers:
        if not results[server]:
            continue
        c = capacity(results[server])
        largest = max(results[server], key=lambda r: r.subscribers)
        measured = (
            f"none of the N run here had < {LOSS_LIMIT_PCT:g} % loss"
            if c.measured_n is None
            else f"at least {c.measured_n} (measured: the largest N run here with < "
            f"{LOSS_LIMIT_PCT:g} % loss, {c.measured_loss_pct:.2f} %)"
        )
        extrapolated = (
            f"extrapolated ≈ {c.extrapolated_n:.0f} (1e6 / ({c.us_per_packet:.1f} µs/pkt x "
            f"{c.pps_per_subscriber:.0f} pkt/s per subscriber), from N={c.from_n}; not measured)"
        )
        if loss(largest) >= LOSS_LIMIT_PCT:
            extrapolated += (
                f"; that assumes loss stays low until the core is full, but N={c.from_n} "
                f"already lost {loss(largest):.1f} %: it does not hold"
            )
        lines.append(f"- {_label(server, config)}: {measured}; {extrapolated}")
    return "\n".join(lines)


def check(outcome: Outcome) -> None:
    """Correctness only: every run completed, every subscriber received frames while measured."""
    failed = [f"{s} N={n}" for s, runs in outcome.failures.items() for n in runs]
    assert not failed, f"failed runs: {', '.join(failed)} (see above)"
    for server, rows in outcome.results.items():
        for r in rows:
            assert r.subscribers_with_frames == r.subscribers, (
                f"{server} N={r.subscribers}: only {r.subscribers_with_frames} subscribers "
                f"received frames"
            )
            assert r.forwarded_packets > 0, f"{server} N={r.subscribers}: no packet"


def parse_args(argv: Sequence[str]) -> tuple[SideBySideConfig, str | None]:
    parser = options.parser("python -m loadtest.sidebyside", __doc__)
    options.add_bench_arguments(parser, default_subscribers=DEFAULT_SUBSCRIBERS, least=1)
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated: aiosfu, janus"
    )
    parser.add_argument(
        "--event-loops", type=options.positive(int), default=2, help="Janus's event_loops"
    )
    parser.add_argument(
        "--rounds", type=options.positive(int), default=1, help="runs of each (server, N)"
    )
    parser.add_argument(
        "--quiet",
        type=options.non_negative(float),
        default=25.0,
        metavar="PCT",
        help="others' CPU to wait below",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=options.non_negative(float),
        default=120.0,
        help="seconds to wait for it, per run",
    )
    args = parser.parse_args(argv)
    bench = options.bench_config(parser, args, default_subscribers=DEFAULT_SUBSCRIBERS, least=1)
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := set(servers) - set(SERVERS):
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    janus = JanusSettings(event_loops=args.event_loops)
    config = SideBySideConfig(bench, servers, janus, args.rounds, args.quiet, args.quiet_timeout)
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config, json_path = parse_args(argv)  # before re-executing: --help and errors need no root
    if not netns.inside_own_namespace():
        netns.reexec_in_new_namespace("loadtest.sidebyside", argv)
    netns.prepare()
    print(netns.describe(), "(no route out: checked)", flush=True)
    janus_config = None
    if "janus" in config.servers:
        if janus_binary() is None:
            raise SystemExit("janus is not installed: apt-get install -y janus (make bench does)")
        janus_config = describe_config(config.janus)
        print(janus_config, flush=True)
    logging.basicConfig(level=logging.WARNING)
    # Before run(), outside its pinning: the CPUs this process may use, the pinning it will use.
    env = environment(
        procstat.plan_pinning(config.bench.pin),
        janus=janus_version() if "janus" in config.servers else None,
    )
    outcome = asyncio.run(run(config))
    payload = {
        "environment": env,
        "config": asdict(config),
        "janus_config": janus_config,
        "results": {server: [asdict(r) for r in rows] for server, rows in outcome.results.items()},
        "failures": outcome.failures,
    }
    emit(format_report(outcome, config, env), payload, json_path)
    check(outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
