"""`aiosfu loadtest`: rooms of synthetic peers against a server, a live display, a report.

    aiosfu loadtest [--url ws://HOST:PORT/ws [--server-pid PID]] [--rooms 1] [--publishers 1]
        [--subscribers 4] [--video 640x360@30:500] [--audio] [--duration 20] [--ramp 5]
        [--settle 2] [--procs 1] [--join-timeout 20] [--ice-addresses 127.0.0.1]
        [--simulcast [--layer auto|l|m|h|mixed]] [--json PATH] [--quiet]

Without --url it starts a server process of its own on 127.0.0.1 (loadtest.serverproc) and
reports that process's CPU and memory; with --url, only when --server-pid names the server.

Timeline: peers join at --ramp joins per second, each room's publishers first (so a receiver's
join time is not the wait for a publisher that joins after it); the measured window begins
--settle seconds after the last join and lasts --duration seconds; then every peer leaves.
Peers are spread over --procs worker processes (round robin), each encoding the clips once.

Exit status: 0 when every peer was up and every receiver got video in the window, 1 otherwise,
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import multiprocessing
import queue
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from . import options
from .loadreport import ServerFigures, build_report, format_table
from .options import LoadConfig, VideoSpec
from .peers import (
    CLOSE_TIMEOUT,
    PeerSpec,
    Progress,
    WorkerConfig,
    WorkerOutcome,
    make_clips,
    run_peers,
    worker_main,
)
from .procstat import ProcessProbe
from .report import emit, environment
from .serverproc import ServerProcess

READY_TIMEOUT = 60.0  # workers import aiortc and encode the clips first
START_MARGIN = 0.5  # from "go" to the first join, so every worker starts on time


def plan_peers(config: LoadConfig, run_id: str) -> list[PeerSpec]:
    """Who joins where, and when: publishers of every room first, then receivers, rooms
    interleaved so each fills at the same pace."""
    order: list[tuple[int, str, int]] = [
        (room, "publisher", j) for j in range(config.publishers) for room in range(config.rooms)
    ] + [(room, "subscriber", j) for j in range(config.subscribers) for room in range(config.rooms)]
    specs = []
    for index, (room, role, j) in enumerate(order):
        expects = config.publishers > 0 if role == "subscriber" else j > 0
        specs.append(
            PeerSpec(
                index=index,
                room=f"lt-{run_id}-{room}",
                role=role,
                name=f"{'pub' if role == 'publisher' else 'sub'}{room}.{j}",
                join_offset=index / config.ramp,
                expects_media=expects,
            )
        )
    return specs


def parse_args(argv: Sequence[str] | None = None) -> tuple[LoadConfig, str | None]:
    parser = argparse.ArgumentParser(
        prog="aiosfu loadtest",
        description="Synthetic peers against an aiosfu server: join times, delivered frame "
        "rates, loss, freezes, server CPU and memory.",
        epilog="Peers gather ICE on --ice-addresses only and use no STUN or TURN server.",
    )
    parser.add_argument("--url", help="the server's WebSocket URL (default: start one here)")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for CPU/RSS")
    parser.add_argument("--rooms", type=options.positive(int), default=1)
    parser.add_argument("--publishers", type=options.non_negative(int), default=1, help="per room")
    parser.add_argument("--subscribers", type=options.non_negative(int), default=4, help="per room")
    parser.add_argument(
        "--video",
        type=options.parse_video,
        default=VideoSpec(),
        help="WxH@fps:kbps (640x360@30:500)",
    )
    parser.add_argument(
        "--simulcast",
        action="store_true",
        help="publishers send three layers l, m, h (--video is h; m and l at 1/2 and 1/4 the "
        "size, 1/3 and 1/10 the bitrate)",
    )
    parser.add_argument(
        "--layer",
        choices=("auto", "l", "m", "h", "mixed"),
        default="auto",
        help="with --simulcast: the layer subscribers ask for (mixed: l, m, h in turn)",
    )
    parser.add_argument("--audio", action="store_true", help="publishers also send Opus audio")
    options.add_duration(parser)
    parser.add_argument(
        "--ramp", type=options.positive(float), default=5.0, help="joins per second"
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="s between the last join and the window"
    )
    parser.add_argument("--procs", type=options.positive(int), default=1, help="worker processes")
    parser.add_argument(
        "--join-timeout", type=options.positive(float), default=20.0, help="s for a peer to be up"
    )
    parser.add_argument(
        "--ice-addresses", default="127.0.0.1", help="comma-separated IPs peers gather ICE on"
    )
    options.add_json(parser)
    parser.add_argument("--quiet", action="store_true", help="no live progress lines")
    args = parser.parse_args(argv)
    if args.layer != "auto" and not args.simulcast:
        parser.error("--layer goes with --simulcast")
    if args.server_pid is not None and args.url is None:
        parser.error("--server-pid goes with --url (without --url the load test starts its own)")
    if args.publishers + args.subscribers == 0:
        parser.error("a room needs at least one peer (--publishers / --subscribers)")
    addresses = tuple(a.strip() for a in args.ice_addresses.split(",") if a.strip())
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            parser.error(f"--ice-addresses: {address!r} is not an IP address")
    config = LoadConfig(
        url=args.url,
        rooms=args.rooms,
        publishers=args.publishers,
        subscribers=args.subscribers,
        video=args.video,
        audio=args.audio,
        duration=args.duration,
        ramp=args.ramp,
        settle=max(0.0, args.settle),
        procs=args.procs,
        join_timeout=args.join_timeout,
        server_pid=args.server_pid,
        ice_addresses=addresses or ("127.0.0.1",),
        progress=not args.quiet,
        simulcast=args.simulcast,
        layer=args.layer,
    )
    return config, args.json


# --- live display --------------------------------------------------------------------------


class Display:
    """One status line a second: rewritten in place on a terminal, appended otherwise.

    Rates come from each worker's consecutive snapshots over that worker's own clock, then are
    added up: workers report at their own moments, so one total over "now" would jitter."""

    def __init__(self, out: TextIO, enabled: bool, planned: int) -> None:
        self.out = out
        self.enabled = enabled and planned > 0
        self.planned = planned
        self.tty = out.isatty()
        self._previous: dict[int, Progress] = {}
        self._rates: dict[int, tuple[float, float, int, int]] = {}  # in, out bit/s; rtp

    def show(self, phase: str, progress: dict[int, Progress]) -> None:
        for worker, now in progress.items():
            before = self._previous.get(worker)
            if before is not None and now.at - before.at >= 0.5:
                dt = now.at - before.at
                self._rates[worker] = (
                    (now.bytes_in - before.bytes_in) * 8 / dt,
                    (now.bytes_out - before.bytes_out) * 8 / dt,
                    now.rtp_expected - before.rtp_expected,
                    now.rtp_received - before.rtp_received,
                )
            if before is None or now.at - before.at >= 0.5:
                self._previous[worker] = now
        if not self.enabled or not self._rates:
            return
        bits_in = sum(r[0] for r in self._rates.values())
        bits_out = sum(r[1] for r in self._rates.values())
        expected = sum(r[2] for r in self._rates.values())
        lost = expected - sum(r[3] for r in self._rates.values())
        loss = 100 * max(0, lost) / expected if expected > 0 else 0.0
        up = sum(p.up for p in progress.values())
        failed = sum(p.failed for p in progress.values())
        line = (
            f"{phase} | peers {up:>4}/{self.planned} up, {failed} join failures | "
            f"in {bits_in / 1e6:7.2f} Mbps | out {bits_out / 1e6:6.2f} Mbps | loss {loss:5.2f} %"
        )
        if self.tty:
            self.out.write("\r\x1b[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.out.write("\n")
            self.out.flush()


# --- the server side ---------------------------------------------------------------------


def metrics_url(ws_url: str) -> str:
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/metrics", "", ""))


async def scrape_forwarded(session: aiohttp.ClientSession, url: str) -> tuple[float, float] | None:
    """(packets, bytes) forwarded so far, all kinds, from the server's /metrics; None if it
    does not answer (another SFU, or metrics not exposed)."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            if response.status != 200:
                return None
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    packets = octets = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "aiosfu_forwarded_packets_total":
                packets += sample.value
            elif sample.name == "aiosfu_forwarded_bytes_total":
                octets += sample.value
    return packets, octets


@dataclass
class _Window:
    t0: float | None = None
    cpu0: float | None = None
    scrape0: tuple[float, float] | None = None


class ServerWatch:
    """Samples the server's CPU, memory and /metrics at the window's ends."""

    def __init__(self, probe: ProcessProbe | None, url: str) -> None:
        self.probe = probe
        self.figures = ServerFigures(pid=probe.pid if probe else None)
        self.metrics_url = metrics_url(url)
        self._window = _Window()
        self._session: aiohttp.ClientSession | None = None

    def sample_memory(self) -> None:
        if self.probe is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            mb = self.probe.rss_bytes() / 2**20
            self.figures.rss_mb = round(mb, 1)
            self.figures.rss_peak_mb = round(max(mb, self.figures.rss_peak_mb or 0.0), 1)

    def _cpu(self) -> float | None:
        if self.probe is None:
            return None
        try:
            return self.probe.cpu_seconds()
        except OSError:
            return None

    async def window_start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._window = _Window(
            time.monotonic(), self._cpu(), await scrape_forwarded(self._session, self.metrics_url)
        )

    async def window_end(self) -> None:
        w, t1, cpu1 = self._window, time.monotonic(), self._cpu()
        self.sample_memory()
        if w.t0 is None:
            return
        elapsed = max(t1 - w.t0, 1e-9)
        if w.cpu0 is not None and cpu1 is not None:
            self.figures.cpu_seconds = round(cpu1 - w.cpu0, 3)
            self.figures.cpu_pct = round(100 * (cpu1 - w.cpu0) / elapsed, 2)
        if self._session is not None:
            scrape1 = await scrape_forwarded(self._session, self.metrics_url)
            if w.scrape0 is not None and scrape1 is not None:
                self.figures.forwarded_pps = round((scrape1[0] - w.scrape0[0]) / elapsed, 1)
                self.figures.forwarded_mbps = round(
                    (scrape1[1] - w.scrape0[1]) * 8 / elapsed / 1e6, 3
                )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


# --- running the workers -------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


class Workers:
    """The peers' processes (or, with one, a task in this process) and their messages."""

    def __init__(self, specs: list[PeerSpec], config: WorkerConfig, procs: int) -> None:
        self.config = config
        self.shares = [specs[i::procs] for i in range(procs)]
        self.shares = [s for s in self.shares if s]
        self.inline = len(self.shares) == 1
        self.messages: Any = queue.SimpleQueue() if self.inline else None
        self.progress: dict[int, Progress] = {}
        self.results: dict[int, WorkerOutcome] = {}
        self._ready: set[int] = set()
        self._procs: list[Any] = []
        self._controls: list[Any] = []
        self._task: asyncio.Task[WorkerOutcome] | None = None

    async def start(self) -> float:
        """Start every worker, wait until all are ready; returns the shared start time."""
        if self.inline:
            publishers = sum(s.role == "publisher" for s in self.shares[0])
            clips = await asyncio.to_thread(make_clips, self.config, publishers)
            start_at = time.monotonic() + START_MARGIN
            self._task = asyncio.ensure_future(
                run_peers(
                    0,
                    self.shares[0],
                    self.config,
                    start_at,
                    lambda p: self.messages.put(("progress", 0, p)),
                    clips,
                )
            )
            return start_at
        context = multiprocessing.get_context("spawn")  # no inherited event loop or threads
        self.messages = context.Queue()
        for worker, share in enumerate(self.shares):
            parent_end, child_end = context.Pipe()
            proc = context.Process(
                target=worker_main,
                args=(worker, share, self.config, self.messages, child_end),
                name=f"aiosfu-loadtest-{worker}",
                daemon=True,
            )
            proc.start()
            self._procs.append(proc)
            self._controls.append(parent_end)
        deadline = time.monotonic() + READY_TIMEOUT
        while len(self._ready) < len(self.shares):
            if time.monotonic() > deadline:
                raise WorkerError(f"only {len(self._ready)} of {len(self.shares)} workers started")
            self.poll()
            self._check_alive()
            await asyncio.sleep(0.05)
        start_at = time.monotonic() + START_MARGIN
        for control in self._controls:
            control.send(start_at)
        return start_at

    def poll(self) -> None:
        if self.inline and self._task is not None and self._task.done():
            self.results[0] = self._task.result()
        while True:
            try:
                kind, worker, payload = self.messages.get_nowait()
            except queue.Empty:
                return
            if kind == "ready":
                self._ready.add(worker)
            elif kind == "progress":
                self.progress[worker] = payload
            elif kind == "result":
                self.results[worker] = payload
            elif kind == "error":
                raise WorkerError(f"worker {worker} failed:\n{payload}")

    def _check_alive(self) -> None:
        for worker, proc in enumerate(self._procs):
            if proc.exitcode is not None and worker not in self.results:
                self.poll()  # its last words may be queued
                if worker not in self.results:
                    raise WorkerError(f"worker {worker} exited with status {proc.exitcode}")

    async def wait_results(self, timeout: float) -> list[WorkerOutcome]:
        deadline = time.monotonic() + timeout
        while len(self.results) < len(self.shares):
            self.poll()
            if not self.inline:
                self._check_alive()
            if time.monotonic() > deadline:
                raise WorkerError(
                    f"{len(self.shares) - len(self.results)} workers sent no results in time"
                )
            await asyncio.sleep(0.05)
        return [self.results[w] for w in sorted(self.results)]

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        # Workers that answered are closing their peers and exit by themselves; the others
        # (an interrupted or failed run) would go on until their window ends.
        answered = set(self.results)
        for worker, proc in enumerate(self._procs):
            if worker in answered:
                await asyncio.to_thread(proc.join, 5.0)
            if proc.is_alive():
                proc.terminate()  # this worker only, by its pid
                await asyncio.to_thread(proc.join, 5.0)


async def run(config: LoadConfig, out: TextIO = sys.stdout) -> dict[str, Any]:
    """The whole load test; returns the report (also what --json writes)."""
    server: ServerProcess | None = None
    watch: ServerWatch | None = None
    workers: Workers | None = None
    probe: ProcessProbe | None = None
    env = environment()  # the machine as the run starts (its load average, say)
    try:
        if config.url is None:
            # Bound before start(): the finally must stop it even if start() is interrupted.
            server = ServerProcess()
            await server.start()
            url, probe = server.url, ProcessProbe(server.pid)
        else:
            url = config.url
            probe = ProcessProbe(config.server_pid) if config.server_pid is not None else None
        specs = plan_peers(config, secrets.token_hex(3))
        last_join = specs[-1].join_offset if specs else 0.0
        window_start = last_join + config.settle
        worker_config = WorkerConfig(
            url=url,
            video=config.video,
            audio=config.audio,
            ice_addresses=config.ice_addresses,
            join_timeout=config.join_timeout,
            window_start=window_start,
            window_end=window_start + config.duration,
            simulcast=config.simulcast,
            layer=config.layer,
        )
        watch = ServerWatch(probe, url)
        display = Display(out, config.progress, len(specs))
        if config.progress:
            out.write(
                f"{len(specs)} peers in {config.rooms} rooms against {url}"
                f"{f' (server pid {probe.pid})' if probe else ''}; joining at "
                f"{config.ramp:g}/s, measuring {config.duration:g}s from "
                f"t={window_start:.1f}s\n"
            )
            out.flush()
        workers = Workers(specs, worker_config, config.procs)
        start_at = await workers.start()

        async def follow(until: float, phase: str) -> None:
            while (left := start_at + until - time.monotonic()) > 0:
                await asyncio.sleep(min(1.0, left))
                workers.poll()
                watch.sample_memory()
                now = time.monotonic()
                display.show(f"{phase:<9} {now - start_at:5.1f}s", workers.progress)

        await follow(window_start, "joining")
        await watch.window_start()
        await follow(window_start + config.duration, "measuring")
        await watch.window_end()
        display.done()
        # Workers measure the window themselves, then close their peers before answering.
        outcomes = await workers.wait_results(timeout=CLOSE_TIMEOUT + 10)
        return build_report(
            config, outcomes, watch.figures, url=url, window=config.duration, env=env
        )
    finally:
        try:
            if workers is not None:
                await workers.stop()
            if watch is not None:
                await watch.close()
        finally:
            if server is not None:
                await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    config, json_path = parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s %(message)s")
    try:
        report = asyncio.run(run(config))
    except WorkerError as exc:
        print(f"aiosfu loadtest: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\naiosfu loadtest: interrupted", file=sys.stderr)
        return 130
    emit(format_table(report), report, json_path)
    return 1 if report["problems"] else 0
