"""Forwarding benchmark: server CPU per forwarded RTP packet, 1 publisher to N subscribers.

    python -m loadtest.forwarding --subscribers 10 --subscribers 25 [--duration 20] [--warmup 5]
        [--bitrate 1000000] [--fps 30] [--width 640 --height 480] [--pin | --no-pin]
        [--json PATH]

For each N: a fresh server process (loadtest.serverproc, 127.0.0.1 only), then in *this*
process one publisher sending pre-encoded VP8 at a fixed bitrate (loadtest.clip) and N
subscribers with `decode=False` (they receive encoded frames; nothing is decoded), all in one
room. Once every subscriber has frames, wait `--warmup` seconds, then measure over
`--duration` seconds.

CPU pinning (`--pin`, the default when this process may use 2 CPUs or more; `--no-pin`): the
server process and all its threads run on one CPU, the lowest this process may use, and this
process (publisher and subscribers) on the others (loadtest.procstat). The server's CPU share is
then a share of its one core, literally, and the clients cannot take that core from it. The
header line, the table and the JSON say whether it was on and which CPUs. Figures:

- server CPU: utime+stime of the server process (/proc/<pid>/stat), as in the Janus figures
  of docs (testing.md), divided by the RTP packets all subscribers received: **µs per
  forwarded packet** (the server also receives the publisher's packets and does RTCP: that is
  part of the cost of forwarding);
- forwarded packets/s, loss (packets the subscribers' sequence numbers say they missed), frames/s
  per subscriber, server RSS, publisher packets/s and payload bitrate, and this process's own
  CPU (when it nears 100 % of a core the clients, not the server, are the bottleneck);
- join time: from a subscriber opening its WebSocket to its first keyframe (the first frame a
  decoder could show), p50/p95/max over the subscribers;
- memory per subscriber: server RSS at the end of the window minus RSS before the first
  subscriber joined (publisher already connected), divided by N.

The measuring half (`Subscriber`, `join_subscribers`, `measure_window`) knows nothing of
aiosfu: loadtest.sidebyside measures Janus with it too. Each subscriber's video is counted by a
loadtest.stats.StreamStats, as `aiosfu loadtest`'s peers are (RTP counts per SSRC, media and RTX
apart: see there); join percentiles are loadtest.stats's (nearest-rank); options are
loadtest.options's, the report goes out through loadtest.report.

It prints figures and asserts only correctness (every subscriber received frames), never a time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from aiortc import MediaStreamTrack, RTCRtpSender

from sfu.client import Client
from sfu.rtc.simulcast import LAYERS
from sfu.simulcast_source import SimulcastTrack

from . import options, procstat
from .child import ChildProcess
from .clip import ClipTrack, EncodedClip, encode_layers, hook_keyframe_requests
from .options import BenchConfig
from .report import emit, environment, environment_line
from .serverproc import HOST, ServerProcess
from .stats import StreamStats, percentile, receiver_of, sender_of

ROOM = "bench"
CONNECT_CONCURRENCY = 5  # clients joining at once (each one does ICE and a DTLS handshake)
DEFAULT_SUBSCRIBERS = [10, 25]


@dataclass
class Result:
    subscribers: int
    duration_s: float
    forwarded_packets: int
    forwarded_pps: float
    server_cpu_s: float
    server_cpu_pct: float
    us_per_packet: float
    lost_packets: int
    loss_pct: float
    rtx_packets: int
    fps_per_subscriber: float  # mean over subscribers
    fps_min: float  # the slowest subscriber
    subscribers_with_frames: int  # in the measured window
    keyframes_received: int  # by all subscribers, in the window
    server_rss_mb: float
    publisher_pps: float
    publisher_kbps: float  # RTP payload (VP8 payload descriptor included), not headers
    publisher_keyframe_requests: int  # PLIs/FIRs that reached the publisher, whole run
    publisher_late_resets: int  # times the publisher's pacing fell 0.5 s behind, whole run
    started_on_keyframe: int  # subscribers whose first frame was a keyframe
    bench_cpu_pct: float  # this process (publisher + subscribers)
    join_p50_s: float  # WebSocket opened -> first keyframe, over the subscribers
    join_p95_s: float
    join_max_s: float
    server_rss_base_mb: float  # publisher connected, no subscriber yet
    rss_per_subscriber_kb: float  # (RSS at the end - base) / N
    machine_busy_pct: float  # every process on every core, in % of one core
    other_load_pct: float  # machine busy - server - this process: others' work, i.e. noise
    machine_steal_pct: float  # CPU the hypervisor gave to other guests, in % of one core
    # Frames the publisher sent in the window that the mean subscriber did not get. A server
    # that drops whole frames and renumbers the packets it sends shows no sequence-number loss;
    # this catches it (± a frame or two at the window's edges).
    frame_shortfall_pct: float
    server_cpus: list[int] | None = None  # the CPU(s) the server was pinned to; None: not pinned
    simulcast: bool = False  # three layers sent, subscribers on l, m, h in turn


async def outbound_counts(sender: RTCRtpSender) -> tuple[int, int]:
    """(packetsSent, bytesSent) from the sender's outbound-rtp stats."""
    report = await sender.getStats()
    for stats in report.values():
        if stats.type == "outbound-rtp":
            return int(stats.packetsSent), int(stats.bytesSent)
    return 0, 0


class Published:
    """What the benchmark's publisher sends, whatever the server: one clip, or three (l, m, h,
    lowest first) as one SimulcastTrack; and what it sent, counted."""

    def __init__(self, clips: Sequence[EncodedClip]) -> None:
        self.clips = [ClipTrack(clip) for clip in clips]
        self.track: MediaStreamTrack = self.clips[0]
        if len(self.clips) > 1:
            self.track = SimulcastTrack(dict(zip(LAYERS, self.clips, strict=True)))
        self._sender: RTCRtpSender | None = None

    def sending(self, sender: RTCRtpSender) -> None:
        """Its track is published, on this sender: keyframe requests reach the clip (a
        SimulcastTrack answers its layers' own)."""
        self._sender = sender
        if isinstance(self.track, ClipTrack):
            hook_keyframe_requests(sender, self.track)

    async def sent(self) -> tuple[int, int]:
        """(RTP packets, payload bytes) sent so far, every layer."""
        if isinstance(self.track, SimulcastTrack):
            streams = self.track.streams.values()
            return sum(s.packets for s in streams), sum(s.octets for s in streams)
        assert self._sender is not None, "not published yet"
        return await outbound_counts(self._sender)

    @property
    def frames_sent(self) -> int:
        """Of the top layer: each layer sends the same frames, at its own size."""
        return self.clips[-1].frames_sent

    @property
    def keyframe_requests(self) -> int:
        return sum(clip.keyframe_requests for clip in self.clips)

    @property
    def late_resets(self) -> int:
        return sum(clip.late_resets for clip in self.clips)

    def stop(self) -> None:
        self.track.stop()
        for clip in self.clips:
            clip.stop()


@dataclass(eq=False)
class Subscriber:
    """One benchmark subscriber of any server: its video, counted, and how it leaves."""

    name: str
    stats: StreamStats
    join_started_at: float  # when it began to join (monotonic clock)
    leave: Callable[[], Awaitable[None]]

    @property
    def join_time(self) -> float | None:
        """Seconds from the start of the join to the first keyframe (the first frame a decoder
        could show)."""
        if self.stats.first_keyframe_at is None:
            return None
        return self.stats.first_keyframe_at - self.join_started_at

    async def close(self) -> None:
        await self.stats.stop()
        await self.leave()


async def _join_subscriber(url: str, index: int, simulcast: bool = False) -> Subscriber:
    """With `simulcast`, subscriber i asks for layer i mod 3: l, m, h, l..."""
    started = time.monotonic()
    client = Client(url, ROOM, name=f"sub{index}", ice_addresses=[HOST], decode=False)
    try:
        await client.connect()
        while True:
            remote = await client.next_track(timeout=20.0)
            if remote.kind == "video":
                if simulcast:
                    await client.set_layer(remote, LAYERS[index % len(LAYERS)])
                assert client.pc is not None
                receiver = receiver_of(client.pc, remote.track)
                stats = StreamStats("video", receiver, remote.track).start()
                return Subscriber(f"sub{index}", stats, started, client.close)
    except BaseException:
        await client.close()
        raise


async def join_subscribers(
    n: int,
    join_one: Callable[[int], Awaitable[Subscriber]],
    concurrency: int = CONNECT_CONCURRENCY,
) -> list[Subscriber]:
    """Join n subscribers, `concurrency` at a time; on any failure close those that joined."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(index: int) -> Subscriber:
        async with gate:
            return await join_one(index)

    joined = await asyncio.gather(*(gated(i) for i in range(n)), return_exceptions=True)
    subscribers = [s for s in joined if not isinstance(s, BaseException)]
    if errors := [e for e in joined if isinstance(e, BaseException)]:
        await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)
        raise errors[0]
    return subscribers


def _log(config: BenchConfig, text: str) -> None:
    if config.verbose:
        print(text, flush=True)


async def wait_first_keyframes(subscribers: Sequence[Subscriber], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while missing := [s.name for s in subscribers if s.stats.first_keyframe_at is None]:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(subscribers)} subscribers got no keyframe within "
                f"{timeout}s: {missing}"
            )
        await asyncio.sleep(0.05)


class MeasuredServer(Protocol):
    def cpu_seconds(self) -> float: ...

    def rss_bytes(self) -> int: ...


class ObservedProcess(Protocol):
    @property
    def returncode(self) -> int | None: ...

    def output(self) -> str: ...


async def post_mortem(process: ObservedProcess, chars: int = 3000) -> str:
    """How the server ended (if it did) and the end of its output, for a failed run."""
    for _ in range(10):  # the exit status shows once asyncio has reaped the child
        if process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    rc = process.returncode
    status = "still running" if rc is None else f"exited with status {rc}"
    if rc is not None and rc < 0:
        status += f" (killed by signal {-rc})"
    return f"--- the server {status}; its output ends with ---\n{process.output()[-chars:]}"


def check_pinned(pid: int, cpus: AbstractSet[int] | None) -> None:
    """Every thread of the server still on its CPU(s), or the figures are not what they claim."""
    if cpus is not None and (stray := procstat.unpinned_threads(pid, cpus)):
        raise AssertionError(
            f"server threads not pinned to CPU {procstat.format_cpus(cpus)}: "
            + ", ".join(f"{tid} on {procstat.format_cpus(c)}" for tid, c in stray.items())
        )


async def measure(
    n: int,
    clips: Sequence[EncodedClip],
    config: BenchConfig,
    server_cpus: AbstractSet[int] | None = None,
) -> Result:
    """One fresh server, 1 publisher, n subscribers: the figures over config.duration.

    `server_cpus`: pin the server process (all its threads) to those CPUs.
    """
    async with ServerProcess(cpus=server_cpus) as server:
        publisher = Client(server.url, ROOM, name="publisher", ice_addresses=[HOST], decode=False)
        published = Published(clips)
        try:
            await publisher.connect()
            await publisher.publish(published.track)
            assert publisher.pc is not None
            published.sending(sender_of(publisher.pc, published.track))
            return await drive(
                server,
                published,
                n,
                lambda i: _join_subscriber(server.url, i, config.simulcast),
                config,
                server_cpus=server_cpus,
            )
        except Exception as exc:
            exc.add_note(await post_mortem(server))
            raise
        finally:
            await publisher.close()
            published.stop()


async def drive(
    server: ChildProcess,
    published: Published,
    n: int,
    join_one: Callable[[int], Awaitable[Subscriber]],
    config: BenchConfig,
    *,
    server_cpus: AbstractSet[int] | None = None,
) -> Result:
    """What a run does once the publisher sends, whatever the server: n subscribers join, all
    get a keyframe, then measure_window(); they leave. `server_cpus`: where the server runs."""
    rss_base = server.rss_bytes()
    started = time.monotonic()
    subscribers: list[Subscriber] = []
    try:
        subscribers = await join_subscribers(n, join_one)
        await wait_first_keyframes(subscribers, config.first_frame_timeout)
        _log(
            config,
            f"  N={n} ({server.name}, pid {server.pid}): {n} subscribers receiving "
            f"{time.monotonic() - started:.1f}s after the first joined; warming up "
            f"{config.warmup:g}s",
        )
        result = await measure_window(
            server, published, subscribers, config, rss_base, server_cpus=server_cpus
        )
        check_pinned(server.pid, server_cpus)
        return result
    finally:
        await asyncio.gather(*(s.close() for s in subscribers), return_exceptions=True)


async def measure_window(
    server: MeasuredServer,
    published: Published,
    subscribers: Sequence[Subscriber],
    config: BenchConfig,
    rss_base: int,
    *,
    server_cpus: AbstractSet[int] | None = None,
) -> Result:
    """Warm up, then measure over config.duration: any server, any kind of subscriber.

    `server_cpus`: where the server was pinned, for the result (this pins nothing).
    """
    await asyncio.sleep(config.warmup)

    cpu0, bench0, t0 = server.cpu_seconds(), time.process_time(), time.monotonic()
    machine0 = procstat.machine_cpu_seconds()
    counts0 = [s.stats.counts() for s in subscribers]
    sent0 = await published.sent()
    published0 = published.frames_sent
    await asyncio.sleep(config.duration)
    cpu1, bench1, t1 = server.cpu_seconds(), time.process_time(), time.monotonic()
    machine1 = procstat.machine_cpu_seconds()
    counts1 = [s.stats.counts() for s in subscribers]
    sent1 = await published.sent()
    published1 = published.frames_sent
    rss = server.rss_bytes()

    n = len(subscribers)
    elapsed = t1 - t0
    deltas = [b - a for a, b in zip(counts0, counts1, strict=True)]
    received = sum(d.rtp_received + d.rtx for d in deltas)  # every packet forwarded to them
    expected = sum(d.rtp_expected for d in deltas)
    lost = max(0, expected - sum(d.rtp_received for d in deltas))
    fps = [d.frames / elapsed for d in deltas] or [math.nan]  # N=0: the publisher alone
    join_p50, join_p95, join_max = join_figures(subscribers)
    frames_published = published1 - published0
    mean_frames = sum(d.frames for d in deltas) / n if n else math.nan
    cpu = cpu1 - cpu0
    return Result(
        subscribers=n,
        duration_s=elapsed,
        forwarded_packets=received,
        forwarded_pps=received / elapsed,
        server_cpu_s=cpu,
        server_cpu_pct=100 * cpu / elapsed,
        us_per_packet=cpu / received * 1e6 if received else math.nan,
        lost_packets=lost,
        loss_pct=100 * lost / expected if expected else math.nan,
        rtx_packets=sum(d.rtx for d in deltas),
        fps_per_subscriber=sum(fps) / len(fps),
        fps_min=min(fps),
        subscribers_with_frames=sum(d.frames > 0 for d in deltas),
        keyframes_received=sum(d.keyframes for d in deltas),
        server_rss_mb=rss / 2**20,
        publisher_pps=(sent1[0] - sent0[0]) / elapsed,
        publisher_kbps=(sent1[1] - sent0[1]) * 8 / elapsed / 1000,
        publisher_keyframe_requests=published.keyframe_requests,
        publisher_late_resets=published.late_resets,
        started_on_keyframe=sum(s.stats.started_on_keyframe for s in subscribers),
        bench_cpu_pct=100 * (bench1 - bench0) / elapsed,
        join_p50_s=join_p50,
        join_p95_s=join_p95,
        join_max_s=join_max,
        server_rss_base_mb=rss_base / 2**20,
        rss_per_subscriber_kb=(rss - rss_base) / n / 1024 if n else math.nan,
        machine_busy_pct=100 * (machine1[0] - machine0[0]) / elapsed,
        other_load_pct=100 * ((machine1[0] - machine0[0]) - cpu - (bench1 - bench0)) / elapsed,
        machine_steal_pct=100 * (machine1[1] - machine0[1]) / elapsed,
        frame_shortfall_pct=(
            max(0.0, 100 * (1 - mean_frames / frames_published)) if frames_published else 0
        ),
        server_cpus=None if server_cpus is None else sorted(server_cpus),
        simulcast=config.simulcast,
    )


def join_figures(subscribers: Sequence[Subscriber]) -> tuple[float, float, float]:
    """Join time p50, p95 and max in seconds (NaN: none joined), of those that have a keyframe."""
    joins = [t for s in subscribers if (t := s.join_time) is not None]
    return percentile(joins, 50), percentile(joins, 95), max(joins, default=math.nan)


def server_share(r: Result) -> str:
    """The server's CPU, in % of a core; when pinned, of the one core it had."""
    if r.server_cpus is None:
        return f"{r.server_cpu_pct:.1f}% of a core"
    return f"{r.server_cpu_pct:.1f}% of its core (CPU {procstat.format_cpus(r.server_cpus)})"


def format_line(r: Result) -> str:
    return (
        f"N={r.subscribers}: {r.forwarded_pps:.0f} forwarded pkt/s, server CPU "
        f"{server_share(r)} = {r.us_per_packet:.1f} µs/packet, loss "
        f"{r.loss_pct:.2f}% ({r.lost_packets} pkts, {r.rtx_packets} rtx), frames short "
        f"{r.frame_shortfall_pct:.1f}%, "
        f"{r.fps_per_subscriber:.1f} fps/subscriber (min {r.fps_min:.1f}), "
        f"{r.keyframes_received} keyframes, RSS {r.server_rss_mb:.0f} MB "
        f"({r.rss_per_subscriber_kb:.0f} KB/subscriber), join p95 {r.join_p95_s * 1000:.0f} ms; "
        f"publisher "
        f"{r.publisher_pps:.0f} pkt/s {r.publisher_kbps:.0f} kbps; bench process CPU "
        f"{r.bench_cpu_pct:.0f}%"
    )


def format_table(results: Sequence[Result], env: dict[str, Any] | None = None) -> str:
    """A row per N, then what it ran on (`env`: report.environment(), by default unpinned)."""
    header = (
        f"{'N':>4} {'fwd pkt/s':>10} {'CPU %':>7} {'µs/pkt':>7} {'loss %':>7} "
        f"{'fps/sub':>8} {'RSS MB':>7} {'pub kbps':>9} {'bench CPU %':>12}"
    )
    rows = [
        f"{r.subscribers:>4} {r.forwarded_pps:>10.0f} {r.server_cpu_pct:>7.1f} "
        f"{r.us_per_packet:>7.1f} {r.loss_pct:>7.2f} {r.fps_per_subscriber:>8.1f} "
        f"{r.server_rss_mb:>7.0f} {r.publisher_kbps:>9.0f} {r.bench_cpu_pct:>12.0f}"
        for r in results
    ]
    return "\n".join([header, *rows, environment_line(env or environment())])


def check(results: Sequence[Result]) -> None:
    """Correctness only: every subscriber received frames while we measured."""
    for r in results:
        assert r.subscribers_with_frames == r.subscribers, (
            f"N={r.subscribers}: only {r.subscribers_with_frames} subscribers received frames"
        )
        assert r.forwarded_packets > 0 or r.subscribers == 0, f"N={r.subscribers}: no packet"


def make_clips(config: BenchConfig) -> tuple[EncodedClip, ...]:
    """The publisher's clip, or its three (l, m, h) with `simulcast`."""
    clips = encode_layers(
        width=config.width,
        height=config.height,
        fps=config.fps,
        bit_rate=config.bitrate,
        frames=config.clip_frames,
        simulcast=config.simulcast,
    )
    for clip in clips:
        _log(
            config,
            f"clip: {len(clip.frames)} VP8 frames {clip.width}x{clip.height} @ {clip.fps} fps, "
            f"keyframe {len(clip.frames[0])} B, looped part {clip.loop_bitrate / 1000:.0f} kbps "
            f"(target {clip.bit_rate / 1000:.0f})",
        )
    return clips


def header_line(config: BenchConfig, pinning: procstat.Pinning | None) -> str:
    return (
        f"forwarding benchmark, N = {', '.join(map(str, config.subscribers))}: "
        f"{config.duration:g} s measured after {config.warmup:g} s warm-up; "
        f"{procstat.describe_pinning(pinning)}"
    )


async def run_benchmark(config: BenchConfig) -> list[Result]:
    """Every N of the config; pinned as config.pin says, this process's affinity restored."""
    pinning = procstat.plan_pinning(config.pin)
    _log(config, header_line(config, pinning))
    clips = make_clips(config)
    results = []
    with procstat.pinned_self(None if pinning is None else pinning.bench):
        for n in config.subscribers:
            result = await measure(n, clips, config, None if pinning is None else pinning.server)
            _log(config, format_line(result))
            results.append(result)
    return results


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig, str | None]:
    parser = options.parser("python -m loadtest.forwarding", __doc__)
    options.add_bench_arguments(parser, default_subscribers=DEFAULT_SUBSCRIBERS, least=0)
    args = parser.parse_args(argv)
    config = options.bench_config(parser, args, default_subscribers=DEFAULT_SUBSCRIBERS, least=0)
    return config, args.json


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    pinning = procstat.plan_pinning(config.pin)  # what run_benchmark will do
    env = environment(pinning)  # outside the pinning: this process's own affinity
    results = asyncio.run(run_benchmark(config))
    payload = {
        "environment": env,
        "config": asdict(config),
        "results": [asdict(r) for r in results],
    }
    emit(format_table(results, env), payload, json_path)
    check(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
