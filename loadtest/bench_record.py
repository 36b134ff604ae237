"""Recorder benchmark: CPU of `aiosfu record` per recorded stream, video and audio apart.

    python -m loadtest.bench_record [--video 4] [--audio 8] [--duration 20] [--warmup 5]
        [--rounds 3] [--pin | --no-pin]

For each kind: a fresh server process (127.0.0.1 only), N publishers in this process each
sending one stream of pre-encoded media (loadtest.clip: VP8 640x480 30 fps ~1 Mbps;
loadtest.audioclip: Opus 32 kbps, 50 packets/s), then two subscriber processes in turn, each
measured over the same window after a warm-up:

- the reference: the same recorder process with its recording switched off (every frame is
  received, reassembled and read, none is written): what receiving costs a Python client;
- the recorder: `aiosfu record`, writing one file per publisher.

Then, with no network at all, what muxing alone costs: sfu.record.container.MediaFile writing
the same clips' frames to a file in this process, in µs of CPU per frame (process time).

Figures: CPU of the process (utime + stime from /proc, every thread) in % of one core, per
stream, and in µs per frame (frames the publishers sent in the window); the recorder's figure
less the reference's is the cost of muxing and writing. The two alternate for `--rounds`
rounds over the same publishers, and the summary takes each one's median (the machine is
shared: single runs drift). With pinning (default when there are 2
CPUs or more) the subscriber process runs alone on the highest CPU, the server and the
publishers on the others. It prints figures and asserts only that files were written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aiortc.mediastreams import MediaStreamError

from sfu.client import Client, RemoteTrack
from sfu.record.container import MediaFile, StreamSpec

from . import procstat
from .audioclip import AudioClipTrack, encode_opus_clip
from .clip import ClipTrack, encode_clip, hook_keyframe_requests
from .recorderproc import RecorderProcess
from .serverproc import HOST, ServerProcess

ROOM = "bench-record"


@dataclass
class Figure:
    kind: str
    streams: int
    role: str  # "recorder" or "reference"
    cpu_pct: float  # of one core, the whole process
    frames_per_s: float  # sent by all publishers in the window
    bytes_per_s: float  # written to files (recorder)

    @property
    def pct_per_stream(self) -> float:
        return self.cpu_pct / self.streams

    @property
    def us_per_frame(self) -> float:
        if not self.frames_per_s:
            return math.nan
        return self.cpu_pct / 100 * 1e6 / self.frames_per_s


async def publish(url: str, kind: str, n: int) -> tuple[list[Client], list[Any]]:
    clients: list[Client] = []
    tracks: list[Any] = []
    make: Callable[[], Any]
    if kind == "video":
        clip = encode_clip(width=640, height=480, fps=30)
        make = partial(ClipTrack, clip)
    else:
        make = partial(AudioClipTrack, encode_opus_clip())
    for i in range(n):
        # The server forwards each publisher the others' streams: taken encoded and dropped, or
        # their frames would pile up unread (decoded, gigabytes in a few minutes).
        client = Client(url, ROOM, name=f"{kind}{i}", ice_addresses=[HOST], decode=False)
        client.on_track(_drain)
        await client.connect()
        track = make()
        await client.publish(track)
        if isinstance(track, ClipTrack):
            assert client.pc is not None
            sender = next(t.sender for t in client.pc.getTransceivers() if t.sender.track is track)
            hook_keyframe_requests(sender, track)
        clients.append(client)
        tracks.append(track)
    return clients, tracks


async def measure(
    url: str,
    kind: str,
    tracks: list[Any],
    role: str,
    out: Path,
    *,
    warmup: float,
    duration: float,
    cpus: frozenset[int] | None,
) -> Figure:
    prefix = [sys.executable, "-m", "loadtest.bench_record", "--receive-only"]
    process = RecorderProcess(
        url, ROOM, out, argv_prefix=prefix if role == "reference" else None, cpus=cpus
    )
    async with process:
        await asyncio.sleep(warmup)
        cpu0, frames0, bytes0 = process.cpu_seconds(), _sent(tracks), _written(out)
        t0 = time.monotonic()
        await asyncio.sleep(duration)
        cpu1, frames1, bytes1 = process.cpu_seconds(), _sent(tracks), _written(out)
        elapsed = time.monotonic() - t0
    if role == "recorder":
        files = process.events("file_closed")
        assert len(files) == len(tracks), f"{len(files)} files for {len(tracks)} streams"
    return Figure(
        kind,
        len(tracks),
        role,
        100 * (cpu1 - cpu0) / elapsed,
        (frames1 - frames0) / elapsed,
        (bytes1 - bytes0) / elapsed,
    )


_DRAINS: set[asyncio.Task[None]] = set()


def _drain(remote: RemoteTrack) -> None:
    async def read() -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await remote.track.recv()

    task = asyncio.ensure_future(read())
    _DRAINS.add(task)
    task.add_done_callback(_DRAINS.discard)


def _sent(tracks: list[Any]) -> int:
    return sum(int(t.frames_sent) for t in tracks)


def _written(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*")) if directory.exists() else 0


async def run(
    kinds: dict[str, int], warmup: float, duration: float, rounds: int, pin: bool | None
) -> None:
    pinning = procstat.plan_pinning(pin)
    # The subscriber measured alone on the highest CPU; the server and publishers elsewhere.
    alone = frozenset({max(pinning.bench)}) if pinning is not None else None
    rest = frozenset(os.sched_getaffinity(0)) - (alone or frozenset())
    where = f"subscriber alone on CPU {sorted(alone)}" if alone else "no pinning"
    print(
        f"recorder benchmark: {where}, {warmup:g} s warm-up, {duration:g} s measured, "
        f"{rounds} rounds; python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    figures: list[Figure] = []
    with procstat.pinned_self(rest if alone else None):
        for kind, n in kinds.items():
            if n <= 0:
                continue
            async with ServerProcess(cpus=rest if alone else None) as server:
                clients, tracks = await publish(server.url, kind, n)
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        for round_, role in itertools.product(
                            range(rounds), ("reference", "recorder")
                        ):
                            figure = await measure(
                                server.url,
                                kind,
                                tracks,
                                role,
                                Path(tmp) / f"{role}{round_}",
                                warmup=warmup,
                                duration=duration,
                                cpus=alone,
                            )
                            figures.append(figure)
                            print(_row(figure), flush=True)
                            if lost := [c.name for c in clients if c.disconnected.is_set()]:
                                raise RuntimeError(
                                    f"publishers {lost} lost their sessions: figures would mean "
                                    "nothing (a machine too loaded to answer ICE consent?)"
                                )
                finally:
                    for client in clients:
                        await client.close()
    mux = mux_cost()
    print(
        f"muxing alone (sfu.record.container.MediaFile.write, no network): "
        f"{mux['video']:.1f} µs per video frame, {mux['audio']:.1f} µs per audio frame"
    )
    print()
    for kind in kinds:
        recs = [f for f in figures if f.kind == kind and f.role == "recorder"]
        refs = [f for f in figures if f.kind == kind and f.role == "reference"]
        if not recs or not refs:
            continue
        pct = statistics.median(f.pct_per_stream for f in recs)
        us = statistics.median(f.us_per_frame for f in recs)
        ref_pct = statistics.median(f.pct_per_stream for f in refs)
        ref_us = statistics.median(f.us_per_frame for f in refs)
        kbps = statistics.median(f.bytes_per_s for f in recs) * 8 / 1000 / recs[0].streams
        print(
            f"{kind}: recorder {pct:.2f} % of a core per stream ({us:.0f} µs per frame); "
            f"receiving alone {ref_pct:.2f} % ({ref_us:.0f} µs per frame); muxing and writing "
            f"{pct - ref_pct:+.2f} % ({us - ref_us:+.0f} µs per frame); "
            f"{kbps:.0f} kbit/s written per stream (medians of {len(recs)} rounds)"
        )


def mux_cost(frames: int = 3000) -> dict[str, float]:
    """µs of this process's CPU per frame that MediaFile.write takes (VP8 640x480 ~1 Mbps, Opus
    32 kbps), writing to a real file."""
    video = encode_clip(width=640, height=480, fps=30).frames
    audio = encode_opus_clip().packets
    cost: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, data, spec, step in (
            ("video", video, StreamSpec("video", "video/VP8", 90_000, 640, 480), 3000),
            ("audio", audio, StreamSpec("audio", "audio/opus", 48_000), 960),
        ):
            file = MediaFile(Path(tmp) / f"{kind}.webm", [spec])
            started = time.process_time()
            for n in range(frames):
                if kind == "audio":
                    file.write(0, data[n % len(data)], n * step, True)
                else:  # the clip's keyframe first, then its other frames, over and over
                    index = 0 if n == 0 else 1 + (n - 1) % (len(data) - 1)
                    file.write(0, data[index], n * step, index == 0)
            file.close()
            cost[kind] = (time.process_time() - started) / frames * 1e6
    return cost


def _row(f: Figure) -> str:
    return (
        f"{f.kind:5} x{f.streams:<3} {f.role:9}  CPU {f.cpu_pct:6.2f} % of a core  "
        f"{f.pct_per_stream:5.2f} % per stream  {f.us_per_frame:6.0f} µs per frame  "
        f"{f.frames_per_s:6.0f} frames/s  {f.bytes_per_s / 1000:7.1f} kB/s written"
    )


def receive_only(argv: Sequence[str]) -> int:
    """The reference process: `aiosfu record` whose participants record nothing."""
    from sfu.record import cli, participant

    def add(self: Any, remote: Any) -> None:
        return None  # the reader still receives and reads every frame, then drops it

    participant.ParticipantRecording.add = add  # type: ignore[method-assign]
    return cli.main(argv[1:] if argv[:1] == ["record"] else argv)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--receive-only"]:
        return receive_only(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_record", description=__doc__)
    parser.add_argument("--video", type=int, default=4, help="video streams (0: skip)")
    parser.add_argument("--audio", type=int, default=8, help="audio streams (0: skip)")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    pin = parser.add_mutually_exclusive_group()
    pin.add_argument("--pin", dest="pin", action="store_true", default=None)
    pin.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args(args_list)
    kinds = {"video": args.video, "audio": args.audio}
    asyncio.run(run(kinds, args.warmup, args.duration, args.rounds, args.pin))
    return 0


if __name__ == "__main__":
    sys.exit(main())
