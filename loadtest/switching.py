"""Layer-switch benchmark: how long a subscriber waits for the simulcast layer it asks for.

    python -m loadtest.switching [--servers aiosfu,janus] [--switches 12] [--interval 1.5]
        [--width 640 --height 480 --fps 30 --bitrate 1000000] [--json PATH]

Needs root when Janus is one of the servers (it runs in a namespace of its own, as in
loadtest.sidebyside). For each server, a fresh process: one publisher sending three pre-encoded
VP8 clips as simulcast layers l, m, h (1/4, 1/2 and the full size; loadtest.clip), one
subscriber that never decodes. The subscriber asks for l, m, h in turn (aiosfu: `set_layer`;
Janus: `configure` with `substream`), every `--interval` seconds, `--switches` times. Each
switch, from the subscriber's side:

- switch time: from the request to the first frame of the new layer (a keyframe: its size, read
  from the VP8 frame header, is the new layer's);
- gap: from the frame before it to that keyframe, i.e. how long the subscriber had nothing new
  (at 30 fps a frame comes every 33 ms: what exceeds that is the switch's cost to a viewer).

The publisher answers a keyframe request at its next frame (its clips start over), so the
figures are the server's part plus one frame interval. Prints p50 / p95 / max per server and
asserts only that every switch completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from aiortc import MediaStreamTrack

from sfu.client import Client
from sfu.rtc.simulcast import LAYERS

from . import netns, options
from .clip import encode_layers
from .forwarding import Published
from .janus import JanusProcess, JanusPublisher, JanusSettings, janus_binary, subscribe
from .report import emit, environment
from .serverproc import HOST, ServerProcess
from .sidebyside import SERVERS
from .stats import percentile

ROOM = "switching"


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """A VP8 keyframe's width and height (RFC 6386 9.1), None for any other frame."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(
        frame[8:10], "little"
    ) & 0x3FFF


@dataclass
class Switch:
    layer: str
    switch_s: float  # request -> first frame of the new layer
    gap_s: float  # the frame before it -> that frame


@dataclass
class ServerResult:
    server: str
    switches: list[Switch] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def figures(self, name: str) -> tuple[float, float, float]:
        values = [getattr(s, name) for s in self.switches]
        return percentile(values, 50), percentile(values, 95), max(values, default=float("nan"))


class Frames:
    """A subscriber's encoded frames as they come: (monotonic time, keyframe size or None)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.seen: list[tuple[float, tuple[int, int] | None]] = []
        self.arrived = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            packet = await track.recv()
            self.seen.append((time.monotonic(), vp8_size(bytes(packet))))  # type: ignore[arg-type]
            self.arrived.set()

    async def first(self, size: tuple[int, int], after: float, timeout: float) -> Switch | None:
        """The first frame of this size after `after`, and the gap before it."""
        deadline = time.monotonic() + timeout
        index = 0
        while time.monotonic() < deadline:
            for i in range(index, len(self.seen)):
                at, got = self.seen[i]
                if at >= after and got == size:
                    gap = at - self.seen[i - 1][0] if i else float("nan")
                    return Switch("", at - after, gap)
            index = len(self.seen)
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
        return None

    def stop(self) -> None:
        self._task.cancel()


async def _switch_around(
    result: ServerResult,
    frames: Frames,
    ask: Callable[[int], Awaitable[None]],
    sizes: Sequence[tuple[int, int]],
    switches: int,
    interval: float,
) -> None:
    """Ask for l, m, h, l... (by rank) and time each switch."""
    await asyncio.sleep(interval)
    for k in range(switches):
        rank = (k + 1) % len(LAYERS)  # the subscriber starts on h, or on l (Janus): move on
        asked = time.monotonic()
        await ask(rank)
        switch = await frames.first(sizes[rank], asked, timeout=10.0)
        if switch is None:
            result.failed.append(f"switch {k + 1} to {LAYERS[rank]}: no frame in 10 s")
        else:
            switch.layer = LAYERS[rank]
            result.switches.append(switch)
        await asyncio.sleep(max(0.0, asked + interval - time.monotonic()))


async def run_aiosfu(
    published: Published, sizes: Sequence[tuple[int, int]], args: Any
) -> ServerResult:
    result = ServerResult("aiosfu")
    async with ServerProcess() as server:
        publisher = Client(server.url, ROOM, name="publisher", ice_addresses=[HOST], decode=False)
        subscriber = Client(server.url, ROOM, name="subscriber", ice_addresses=[HOST], decode=False)
        try:
            await publisher.connect()
            await publisher.publish(published.track)
            await subscriber.connect()
            remote = await subscriber.next_track(timeout=20.0)
            frames = Frames(remote.track)
            try:

                async def ask(rank: int) -> None:
                    await subscriber.set_layer(remote, LAYERS[rank])

                await _switch_around(result, frames, ask, sizes, args.switches, args.interval)
            finally:
                frames.stop()
        finally:
            await subscriber.close()
            await publisher.close()
    return result


async def run_janus(
    published: Published, sizes: Sequence[tuple[int, int]], args: Any
) -> ServerResult:
    result = ServerResult("janus")
    settings = JanusSettings()
    async with JanusProcess(settings) as janus:
        publisher = await JanusPublisher.start(janus.url, published.track, room=settings.room)
        try:
            subscription = await subscribe(janus.url, publisher.feed, room=settings.room)
            frames = Frames(subscription.track)
            try:
                await _switch_around(
                    result, frames, subscription.set_substream, sizes, args.switches, args.interval
                )
            finally:
                frames.stop()
                await subscription.close()
        finally:
            await publisher.close()
    return result


def format_report(results: Sequence[ServerResult], args: Any, env: dict[str, Any]) -> str:
    lines = [
        f"{env['date_utc']}, aiosfu {env['aiosfu']}; {env['nproc']} cores ({env['cpu_model']}), "
        f"Python {env['python']}; 1 publisher sending VP8 simulcast l/m/h (top "
        f"{args.width}x{args.height} {args.fps} fps ~{args.bitrate // 1000} kbps), 1 subscriber "
        f"asking for l, m, h in turn every {args.interval:g} s, {args.switches} switches",
        "",
        "| server | switches | switch time p50 / p95 / max ms | gap p50 / p95 / max ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in results:
        switch, gap = r.figures("switch_s"), r.figures("gap_s")
        lines.append(
            f"| {r.server} | {len(r.switches)} | "
            + " / ".join(f"{v * 1000:.0f}" for v in switch)
            + " | "
            + " / ".join(f"{v * 1000:.0f}" for v in gap)
            + " |"
        )
        lines += [f"  {r.server}: {failure}" for failure in r.failed]
    return "\n".join(lines)


async def run(args: Any) -> list[ServerResult]:
    clips = encode_layers(
        width=args.width,
        height=args.height,
        fps=args.fps,
        bit_rate=args.bitrate,
        frames=3 * args.fps,
        simulcast=True,
    )
    sizes = [(clip.width, clip.height) for clip in clips]
    results = []
    for server in args.servers:
        published = Published(clips)
        try:
            if server == "aiosfu":
                results.append(await run_aiosfu(published, sizes, args))
            else:
                results.append(await run_janus(published, sizes, args))
        finally:
            published.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = options.parser("python -m loadtest.switching", __doc__)
    parser.add_argument("--servers", default=",".join(SERVERS), help="aiosfu, janus")
    parser.add_argument("--switches", type=options.positive(int), default=12)
    parser.add_argument("--interval", type=options.positive(float), default=1.5)
    parser.add_argument("--bitrate", type=options.positive(int), default=1_000_000)
    parser.add_argument("--fps", type=options.positive(int), default=30)
    parser.add_argument("--width", type=options.positive(int), default=640)
    parser.add_argument("--height", type=options.positive(int), default=480)
    options.add_json(parser)
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := set(args.servers) - set(SERVERS):
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    if "janus" in args.servers:
        if not netns.inside_own_namespace():
            netns.reexec_in_new_namespace("loadtest.switching", argv)
        netns.prepare()
        if janus_binary() is None:
            raise SystemExit("janus is not installed: apt-get install -y janus (make bench does)")
    logging.basicConfig(level=logging.WARNING)
    env = environment()
    results = asyncio.run(run(args))
    payload = {
        "environment": env,
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "results": [asdict(r) for r in results],
    }
    emit(format_report(results, args, env), payload, args.json)
    failed = [f"{r.server}: {f}" for r in results for f in r.failed]
    assert not failed, "; ".join(failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
