"""`aiosfu loadtest`'s synthetic peers, and the worker that runs a share of them in one process.

A peer is one `sfu.client.Client(decode=False)`: a publisher sends the pre-encoded clips of
loadtest.clip / loadtest.audioclip (nothing is encoded while it runs), and every peer receives
what the room forwards without decoding it, each track counted by a loadtest.stats.StreamStats
(as the benchmarks' subscribers are). Peers gather ICE on `ice_addresses` only and are given no
ICE server at all.

With `simulcast`, a publisher's video is three clips, l, m, h (sfu.simulcast_source): h at the
--video size and bitrate, m and l at 1/2 and 1/4 the size, 1/3 and 1/10 the bitrate (the
page's ratios), and each subscriber asks for `layer` (`mixed`: l, m, h in turn by peer).

A worker gets its peers with join times on a shared timeline: `time.monotonic()` is one
system-wide clock on Linux, so the parent and every worker process agree on `start_at`. It
reports a Progress every second and, after the measured window, one PeerResult per peer. The
same code runs in the parent's process when there is one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing.connection
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack

from sfu.client import Client, RemoteTrack
from sfu.rtc.ice import set_ice_addresses
from sfu.rtc.simulcast import LAYERS
from sfu.simulcast_source import SimulcastTrack

from .audioclip import AudioClipTrack, EncodedAudioClip, encode_opus_clip
from .clip import ClipTrack, EncodedClip, encode_layers, hook_keyframe_requests
from .options import VideoSpec
from .stats import Counts, StreamStats, receiver_of, sender_of

CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class PeerSpec:
    index: int
    room: str
    role: str  # "publisher" or "subscriber"
    name: str
    join_offset: float  # seconds after start_at
    # Someone in its room publishes before it joins, so "connect -> first remote frame" is a
    # join time (the room's first publisher would only measure when the second one came).
    expects_media: bool


@dataclass(frozen=True)
class WorkerConfig:
    url: str
    video: VideoSpec
    audio: bool
    ice_addresses: tuple[str, ...]
    join_timeout: float
    window_start: float  # seconds after start_at
    window_end: float
    simulcast: bool = False
    layer: str = "auto"


@dataclass
class Progress:
    """One worker's running totals (the parent turns them into rates)."""

    worker: int
    at: float = 0.0  # time.monotonic() of the snapshot
    peers: int = 0
    up: int = 0  # connected, published, and receiving if it expects media
    failed: int = 0
    bytes_in: int = 0  # encoded media payload received by its peers
    bytes_out: int = 0  # encoded media payload its publishers sent
    rtp_received: int = 0
    rtp_expected: int = 0


@dataclass
class StreamResult:
    kind: str
    from_peer: str
    frames: int  # in the measured window
    bytes: int  # in the measured window
    fps: float  # in the measured window
    keyframes: int  # whole run
    frame_gaps: int  # video timestamp jumps of more than 1.5 frame durations, whole run
    longest_freeze: float  # seconds between two frames (or the last one and the end)
    rtp_received: int  # in the measured window, media SSRC
    rtp_expected: int
    rtx_received: int  # in the measured window, RTX SSRC
    first_frame_at: float | None  # seconds after the peer started to connect
    layer: str | None = None  # the simulcast layer it got last (None: no simulcast)


@dataclass
class PeerResult:
    index: int
    room: str
    role: str
    name: str
    expects_media: bool
    peer_id: str | None = None
    error: str | None = None
    connect_time: float | None = None  # WebSocket connect -> welcome
    join_time: float | None = None  # WebSocket connect -> first remote frame
    bytes_sent: int = 0  # whole run
    frames_sent: int = 0
    window_bytes_sent: int = 0
    window_video_frames_sent: int = 0
    keyframe_requests: int = 0
    streams: list[StreamResult] = field(default_factory=list)


class Peer:
    def __init__(
        self,
        spec: PeerSpec,
        config: WorkerConfig,
        video: tuple[EncodedClip, ...],
        audio: EncodedAudioClip | None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.result = PeerResult(spec.index, spec.room, spec.role, spec.name, spec.expects_media)
        self.client: Client | None = None
        self.streams: list[_Stream] = []
        # One clip, or one per simulcast layer (lowest first): what is counted as sent.
        self.clips = [ClipTrack(clip) for clip in video]
        self.video: MediaStreamTrack | None = None
        if len(self.clips) > 1:
            self.video = SimulcastTrack(dict(zip(LAYERS, self.clips, strict=True)))
        elif self.clips:
            self.video = self.clips[0]
        self.audio = AudioClipTrack(audio) if audio is not None else None
        self.started_at: float | None = None
        self.sent_window: list[tuple[int, int]] = []  # (bytes, video frames) sent at its ends
        self.ready = False  # connected (and published)
        self.first_frame = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        return self.ready and (self.first_frame.is_set() or not self.spec.expects_media)

    @property
    def failed(self) -> bool:
        return self.result.error is not None

    async def run(self, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at + self.spec.join_offset - time.monotonic()))
        try:
            await asyncio.wait_for(self._join(), self.config.join_timeout)
        except Exception as exc:
            self.result.error = _describe(exc, self.config.join_timeout)

    async def _join(self) -> None:
        config = self.config
        self.started_at = time.monotonic()
        client = self.client = Client(
            config.url,
            self.spec.room,
            name=self.spec.name,
            ice_servers=[],  # never a STUN server, whatever the server's welcome says
            ice_addresses=list(config.ice_addresses),
            decode=False,
        )
        client.on_track(self._on_track)  # before connect: the first offer may follow welcome
        welcome = await client.connect(timeout=config.join_timeout)
        self.result.peer_id = welcome.peer_id
        self.result.connect_time = time.monotonic() - self.started_at
        tracks = [t for t in (self.video, self.audio) if t is not None]
        if tracks:
            await client.publish(*tracks, timeout=config.join_timeout)
            if isinstance(self.video, ClipTrack):  # a SimulcastTrack answers its own
                assert client.pc is not None
                hook_keyframe_requests(sender_of(client.pc, self.video), self.video)
        self.ready = True
        if self.spec.expects_media:
            await self.first_frame.wait()

    def _on_track(self, remote: RemoteTrack) -> None:
        assert self.client is not None and self.client.pc is not None
        stats = StreamStats(
            remote.kind,
            receiver_of(self.client.pc, remote.track),
            remote.track,
            fps=self.config.video.fps,
            on_first_frame=self._on_first_frame,
        )
        self.streams.append(_Stream(remote, stats.start()))
        layer = self.config.layer
        if layer == "mixed":
            layer = LAYERS[self.spec.index % len(LAYERS)]
        if remote.kind == "video" and self.config.simulcast and layer != "auto":
            task = asyncio.ensure_future(self.client.set_layer(remote, layer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _on_first_frame(self, now: float) -> None:
        if not self.first_frame.is_set():
            assert self.started_at is not None
            self.result.join_time = now - self.started_at
            self.first_frame.set()

    def bytes_sent(self) -> int:
        audio = self.audio.bytes_sent if self.audio is not None else 0
        return audio + sum(clip.bytes_sent for clip in self.clips)

    def video_frames_sent(self) -> int:
        """Frames of the top layer (each layer sends the same frames, at its own size)."""
        return self.clips[-1].frames_sent if self.clips else 0

    def mark_window(self) -> None:
        """At the window's start, then at its end."""
        video_frames = self.video_frames_sent()
        self.sent_window.append((self.bytes_sent(), video_frames))
        for stream in self.streams:
            stream.window.append(stream.stats.counts())

    def progress_into(self, progress: Progress) -> None:
        progress.peers += 1
        progress.up += self.up and not self.failed
        progress.failed += self.failed
        for stream in self.streams:
            counts = stream.stats.counts()
            progress.bytes_in += counts.bytes
            progress.rtp_received += counts.rtp_received
            progress.rtp_expected += counts.rtp_expected
        progress.bytes_out += self.bytes_sent()

    def finish(self, window: float, end: float) -> PeerResult:
        result = self.result
        if self.spec.expects_media and result.join_time is None and result.error is None:
            result.error = "no remote frame by the end of the run"
        result.bytes_sent = self.bytes_sent()
        result.frames_sent = self.video_frames_sent()
        if self.audio is not None:
            result.frames_sent += self.audio.frames_sent
        if len(self.sent_window) == 2:
            (b0, f0), (b1, f1) = self.sent_window
            result.window_bytes_sent, result.window_video_frames_sent = b1 - b0, f1 - f0
        result.keyframe_requests = sum(clip.keyframe_requests for clip in self.clips)
        for stream in self.streams:
            stats = stream.stats
            marks = stream.window
            # A stream that came during the window counts from its start.
            got = marks[1] - marks[0] if len(marks) == 2 else (marks or [stats.counts()])[-1]
            result.streams.append(
                StreamResult(
                    kind=stats.kind,
                    from_peer=stream.remote.peer_id,
                    frames=got.frames,
                    bytes=got.bytes,
                    fps=got.frames / window if window > 0 else 0.0,
                    keyframes=stats.keyframes,
                    frame_gaps=stats.frame_gaps,
                    longest_freeze=stats.longest_freeze(end),
                    rtp_received=got.rtp_received,
                    rtp_expected=got.rtp_expected,
                    rtx_received=got.rtx,
                    first_frame_at=(
                        None
                        if stats.first_frame_at is None or self.started_at is None
                        else stats.first_frame_at - self.started_at
                    ),
                    layer=stream.remote.layer,
                )
            )
        return result

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(stream.stats.stop() for stream in self.streams))
        for track in (self.video, self.audio, *self.clips):
            if track is not None:
                track.stop()
        if self.client is not None:
            await self.client.close()


@dataclass
class _Stream:
    remote: RemoteTrack
    stats: StreamStats
    window: list[Counts] = field(default_factory=list)  # at the window's start, then its end


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"not up within {timeout:g}s (connect, publish and first remote frame)"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class WorkerOutcome:
    worker: int
    # This process's CPU in the window, all threads: near 100 % of a core, the load generator,
    # not the server, sets the pace (publishers fall behind, receivers see fewer frames).
    cpu_pct: float
    peers: list[PeerResult]


Report = Callable[[object], None]


async def run_peers(
    worker: int,
    specs: list[PeerSpec],
    config: WorkerConfig,
    start_at: float,
    report: Report,
    clips: tuple[tuple[EncodedClip, ...], EncodedAudioClip | None],
) -> WorkerOutcome:
    """Join `specs` on schedule, report Progress every second, measure the window, leave."""
    set_ice_addresses(config.ice_addresses)
    video, audio = clips
    peers = [
        Peer(
            spec,
            config,
            video if spec.role == "publisher" else (),
            audio if spec.role == "publisher" else None,
        )
        for spec in specs
    ]
    joins = [asyncio.ensure_future(p.run(start_at)) for p in peers]

    def progress() -> Progress:
        snapshot = Progress(worker, time.monotonic())
        for peer in peers:
            peer.progress_into(snapshot)
        return snapshot

    async def until(offset: float) -> None:
        while (left := start_at + offset - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            report(progress())

    try:
        await until(config.window_start)
        cpu0 = time.process_time()
        for peer in peers:
            peer.mark_window()
        await until(config.window_end)
        end, cpu1 = time.monotonic(), time.process_time()
        for peer in peers:
            peer.mark_window()
        window = config.window_end - config.window_start
        outcome = WorkerOutcome(
            worker,
            round(100 * (cpu1 - cpu0) / window, 1) if window > 0 else 0.0,
            [peer.finish(window, end) for peer in peers],
        )
    finally:
        for join in joins:
            join.cancel()
        await asyncio.gather(*joins, return_exceptions=True)
        closing = asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing, CLOSE_TIMEOUT)
    return outcome


def make_clips(
    config: WorkerConfig, publishers: int
) -> tuple[tuple[EncodedClip, ...], EncodedAudioClip | None]:
    """Encode once per process; every publisher of the process loops the same clips (one per
    simulcast layer, lowest first, with `simulcast`)."""
    if publishers == 0:
        return (), None
    v = config.video
    video = encode_layers(
        width=v.width,
        height=v.height,
        fps=v.fps,
        bit_rate=v.kbps * 1000,
        frames=3 * v.fps,
        simulcast=config.simulcast,
    )
    return video, encode_opus_clip() if config.audio else None


# --- worker processes ------------------------------------------------------------------------


def worker_main(
    worker: int,
    specs: list[PeerSpec],
    config: WorkerConfig,
    messages: Any,  # multiprocessing Queue: ("ready"|"progress"|"result"|"error", worker, ...)
    control: multiprocessing.connection.Connection,
) -> None:
    """Entry point of a worker process (spawned: nothing is inherited but these arguments)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    logging.basicConfig(level=logging.ERROR)
    try:
        clips = make_clips(config, sum(s.role == "publisher" for s in specs))
        messages.put(("ready", worker, None))
        start_at: float = control.recv()
        try:
            import uvloop

            run: Callable[..., Any] = uvloop.run
        except ImportError:
            run = asyncio.run
        outcome = run(
            run_peers(
                worker,
                specs,
                config,
                start_at,
                lambda p: messages.put(("progress", worker, p)),
                clips,
            )
        )
        messages.put(("result", worker, outcome))
    except BaseException:
        messages.put(("error", worker, traceback.format_exc()))
