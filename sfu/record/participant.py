"""ParticipantRecording: one participant's tracks, written to one file at a time.

A file declares its tracks in its header, before any frame. So a new file first holds its
frames in memory until every track the participant sends has given one (a video track, a
keyframe) and a sender report, or until SETTLE seconds passed since the first: then the header
is written with the tracks that did, each placed at its true offset (sfu.record.timeline), and
from then on frames go to the file as they arrive. Later:

- a track that ends leaves its stream in the file; a new track of the same kind and codec (the
  camera turned off and on) takes that stream over, at its own true offset;
- a track that fits no stream of the file (a camera turned on after joining with the microphone
  only) ends the file and starts the next one, with every live track (a keyframe is requested);
- when no track is left (the participant left, or unpublished) the file is finished.

Files are named `<name>_<UTC start, YYYYmmdd-HHMMSS.mmm>Z_<peer_id>.webm` (`.mkv` for H.264): a
person's files sort together, in the order they were made; the peer id tells two stays apart.
Synchronous and single-threaded: the Recorder calls in from its tasks on one event loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sfu.client import RemoteTrack
from signaling.log import bind

from .codecs import codec_info, container_for, picture_size
from .container import MediaFile, StreamSpec
from .timeline import Basis, FirstFrame, choose_basis

logger = logging.getLogger(__name__)

SETTLE: Final = 2.0  # seconds a new file waits for the participant's slowest track
RETRY: Final = 5.0  # seconds before trying again to open a file that could not be opened
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

Emit = Callable[..., None]


@dataclass(eq=False)
class TrackRecording:
    """One remote track, as this participant's recording sees it."""

    remote: RemoteTrack
    slot: int | None = None  # its stream in the current file
    offset: int = 0  # file pts = offset + (pts - first_pts) - lead
    first_pts: int = 0
    lead: int = 0  # pre-roll: how far its first frame precedes the file's start (ticks)
    preroll: bool = False  # its frames still precede the file's start
    pull_back: bool = False  # its first frame goes at the file's start (timeline.PULL_BACK)
    anchor: float | None = None  # its first frame's capture time, as placed (sender clock)
    reports_seen: int = 0  # sender reports looked at
    drift: float = 0.0  # what later sender reports say of that placement, seconds (largest)
    ended: bool = False
    held: list[tuple[Any, float]] = field(default_factory=list)  # (packet, arrival) not written
    frames: int = 0  # written, over all files
    dropped: int = 0  # frames that could not go in a file (before a keyframe, out of order)

    @property
    def kind(self) -> str:
        return self.remote.kind

    @property
    def codec(self) -> str:
        return self.remote.codec

    def first(self) -> FirstFrame:
        packet, arrival = self.held[0]
        capture = self.remote.clock.capture_time(packet.pts)
        clock_rate = self.remote.clock.clock_rate
        return FirstFrame(packet.pts, clock_rate, self.kind, arrival, capture)

    def ready(self) -> bool:
        """Holds a frame to start on, and knows when it was captured."""
        return bool(self.held) and self.first().capture is not None


@dataclass(frozen=True)
class FileStatus:
    path: Path
    peer_id: str
    name: str | None
    kinds: tuple[str, ...]
    started_at: float  # our wall clock when the file was opened
    seconds: float  # media written so far
    bytes: int
    open: bool


class ParticipantRecording:
    def __init__(
        self,
        peer_id: str,
        name: str | None,
        directory: Path,
        emit: Emit,
        request_keyframe: Callable[[RemoteTrack], None],
        *,
        finished: list[FileStatus] | None = None,
        settle: float = SETTLE,
    ) -> None:
        self.peer_id = peer_id
        self.name = name
        self.directory = directory
        self.settle = settle
        self.tracks: list[TrackRecording] = []
        self.file: MediaFile | None = None
        self.basis: Basis | None = None
        self.opened_at = 0.0
        self.finished = [] if finished is None else finished  # files done, shared by a Recorder
        self._emit = emit
        self._request_keyframe = request_keyframe
        self._first_held = 0.0  # arrival of the first frame held for the next file
        self._retry_at = 0.0  # after a file could not be opened
        self.log = bind(logger, peer=peer_id)

    # --- tracks ---------------------------------------------------------------------------------

    def add(self, remote: RemoteTrack) -> TrackRecording | None:
        if codec_info(remote.codec) is None:
            self.log.warning("%s track in %s: not recordable, skipped", remote.kind, remote.codec)
            return None
        track = TrackRecording(remote)
        self.tracks.append(track)
        return track

    def frame(self, track: TrackRecording, packet: Any, arrival: float) -> None:
        """An encoded frame (av.Packet: pts in the track's clock) arrived on a track."""
        if track.ended:
            return
        if track.slot is not None and self.file is not None:
            self._write(track, packet)
            return
        if not track.held and track.kind == "video" and not packet.is_keyframe:
            track.dropped += 1  # nothing can decode it: wait for a keyframe
            return
        if self.file is None and not any(t.held for t in self.tracks):
            self._first_held = arrival
        track.held.append((packet, arrival))
        self.check(arrival)

    def end(self, track: TrackRecording, reason: str = "ended") -> None:
        """The track will send nothing more."""
        if track.ended:
            return
        track.ended = True
        track.held.clear()
        if all(t.ended for t in self.tracks):
            self.close(reason)
        else:
            self.check(time.time())

    @property
    def live(self) -> list[TrackRecording]:
        return [t for t in self.tracks if not t.ended]

    # --- files ----------------------------------------------------------------------------------

    def check(self, now: float) -> None:
        """Start a file, or place a late track, when the frames held allow it (called on each
        held frame and a few times a second)."""
        if self.file is None:
            waiting = [t for t in self.live if not t.ready()]
            timed_out = now - self._first_held >= self.settle
            if any(t.held for t in self.live) and (not waiting or timed_out):
                if now < self._retry_at:
                    self._drop_held()
                    return
                try:
                    self._open()
                except Exception as exc:  # a full disk, a directory that went away
                    self.log.exception("cannot open a file: frames dropped for %.0f s", RETRY)
                    self._emit("error", peer_id=self.peer_id, name=self.name, message=str(exc))
                    self.file = None
                    self._retry_at = now + RETRY
                    self._drop_held()
            return
        for track in self.live:
            if track.slot is not None or not track.held:
                continue
            if track.ready() or now - track.held[0][1] >= self.settle:
                self._join(track)

    def _open(self) -> None:
        starting = [t for t in self.live if t.held]
        assert starting
        firsts = [t.first() for t in starting]
        basis = choose_basis(firsts)
        if not basis.by_sender:
            self.log.info("no usable sender reports yet: tracks placed by arrival time")
        specs = []
        for track in starting:
            width, height = picture_size(track.codec, bytes(track.held[0][0])) or (0, 0)
            specs.append(
                StreamSpec(track.kind, track.codec, track.remote.clock.clock_rate, width, height)
            )
        path = self._new_path(container_for([s.codec for s in specs])[1])
        # Time 0 of the file on our clock: what lines up the files of different participants.
        start_time = basis.origin + basis.delay if basis.by_sender else basis.origin
        self.file = MediaFile(path, specs, start_time)
        self.basis = basis
        self.opened_at = time.time()
        for slot, (track, first) in enumerate(zip(starting, firsts, strict=True)):
            track.slot, track.first_pts, track.offset = slot, first.pts, basis.offset(first)
            track.lead = basis.lead(first)
            track.preroll = track.lead > 0
            track.pull_back = basis.pulled_back(first)
            track.anchor = first.capture if basis.by_sender else None
            track.reports_seen, track.drift = track.remote.clock.reports, 0.0
        self._emit(
            "file_opened",
            path=str(path),
            peer_id=self.peer_id,
            name=self.name,
            tracks=[f"{s.kind}:{s.codec}" for s in specs],
            offsets_ms={
                t.kind + str(t.slot): round(1000 * t.offset / t.remote.clock.clock_rate)
                for t in starting
            },
            pulled_back_ms={
                t.kind + str(t.slot): round(1000 * t.offset / t.remote.clock.clock_rate)
                for t in starting
                if t.pull_back
            },
            preroll_ms={
                t.kind + str(t.slot): round(1000 * t.lead / t.remote.clock.clock_rate)
                for t in starting
                if t.lead
            },
            sync="sender_reports" if basis.by_sender else "arrival",
            start_time=round(start_time, 3),
        )
        self.log.info("recording to %s", path.name)
        # What was held goes in as it arrived, so the muxer sees the streams interleaved.
        held = [(arrival, track, packet) for track in starting for packet, arrival in track.held]
        held.sort(key=lambda item: item[0])
        for track in starting:
            track.held = []
        for _, track, packet in held:
            self._write(track, packet)

    def _join(self, track: TrackRecording) -> None:
        """A track that started after the file: into a free stream of its kind, or a new file."""
        assert self.file is not None and self.basis is not None
        taken = {t.slot for t in self.live if t.slot is not None}
        free = [
            slot
            for slot, spec in enumerate(self.file.specs)
            if slot not in taken and spec.kind == track.kind and spec.codec == track.codec
        ]
        if not free:
            self.log.info("a %s track started after the file: next file", track.kind)
            self._next_file()
            return
        slot = free[0]
        first = track.first()
        last = self.file.last_pts[slot]
        track.slot, track.first_pts, track.lead, track.preroll = slot, first.pts, 0, False
        track.pull_back = False
        track.anchor = first.capture if self.basis.by_sender else None
        track.reports_seen, track.drift = track.remote.clock.reports, 0.0
        track.offset = max(self.basis.offset(first), 0 if last is None else last + 1)
        held, track.held = track.held, []
        for packet, _ in held:
            self._write(track, packet)

    def _next_file(self) -> None:
        self._finish("tracks_changed")
        now = time.time()
        self._first_held = now
        for track in self.live:
            if track.kind == "video" and not track.held:
                self._request_keyframe(track.remote)
        self.check(now)

    def _write(self, track: TrackRecording, packet: Any) -> None:
        file = self.file
        assert file is not None and track.slot is not None
        if track.remote.clock.reports != track.reports_seen:
            self._check_drift(track)
        pts = track.offset + packet.pts - track.first_pts - track.lead
        last = file.last_pts[track.slot]
        if track.pull_back:
            track.pull_back = False
            pts = 0
        elif track.preroll:
            # Pre-roll (see sfu.record.timeline): 1 ms apart from the file's start, until the
            # frames catch up with their own time.
            step = track.remote.clock.clock_rate // 1000
            floor = 0 if last is None else last + step
            track.preroll = pts < floor
            pts = max(pts, floor)
        elif last is not None and pts <= last:
            track.dropped += 1
            return
        try:
            file.write(track.slot, bytes(packet), pts, bool(packet.is_keyframe))
        except Exception:
            self.log.exception("writing to %s failed: file closed", file.path.name)
            self._finish("error")
            self._retry_at = time.time() + RETRY
            return
        track.frames += 1

    def _check_drift(self, track: TrackRecording) -> None:
        """A new sender report: how far it would move the track's first frame."""
        track.reports_seen = track.remote.clock.reports
        if track.anchor is None:
            return
        capture = track.remote.clock.capture_time(track.first_pts)
        if capture is None:
            return
        drift = capture - track.anchor
        if abs(drift) > abs(track.drift):
            track.drift = drift
            if abs(drift) > 0.02:
                self.log.info("%s: sender reports now place it %+.0f ms", track.kind, 1000 * drift)

    def _finish(self, reason: str) -> None:
        file, self.file = self.file, None
        if file is None:
            return
        # How far the sender reports that came later disagree with where each track was placed
        # (the first ones may be the server's estimate, see sfu.senderclock).
        drifts = {
            f"{t.kind}{t.slot}": round(1000 * t.drift)
            for t in self.tracks
            if t.slot is not None and t.anchor is not None
        }
        for track in self.tracks:
            track.slot, track.anchor = None, None
        try:
            file.close()
        except Exception:
            self.log.exception("finishing %s failed", file.path.name)
        status = self._status(file, open_=False)
        self.finished.append(status)
        self.log.info(
            "finished %s (%s): %.1f s, %d bytes",
            file.path.name,
            reason,
            status.seconds,
            status.bytes,
        )
        self._emit(
            "file_closed",
            path=str(file.path),
            peer_id=self.peer_id,
            name=self.name,
            reason=reason,
            seconds=round(status.seconds, 3),
            bytes=status.bytes,
            drift_ms=drifts,
        )

    def close(self, reason: str) -> None:
        """Finish the file (if any) and forget what is held. Idempotent."""
        self._drop_held()
        self._finish(reason)

    def _drop_held(self) -> None:
        for track in self.tracks:
            track.dropped += len(track.held)
            track.held.clear()

    def status(self) -> FileStatus | None:
        return None if self.file is None else self._status(self.file, open_=True)

    def _status(self, file: MediaFile, *, open_: bool) -> FileStatus:
        return FileStatus(
            path=file.path,
            peer_id=self.peer_id,
            name=self.name,
            kinds=tuple(s.kind for s in file.specs),
            started_at=self.opened_at,
            seconds=file.seconds(),
            bytes=file.bytes_written,
            open=open_,
        )

    def _new_path(self, extension: str) -> Path:
        name = _UNSAFE.sub("-", self.name or "").strip("-.")[:48] or "guest"
        now = time.time()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        stem = f"{name}_{stamp}Z_{_UNSAFE.sub('-', self.peer_id)}"
        path = self.directory / f"{stem}{extension}"
        n = 2
        while path.exists():
            path = self.directory / f"{stem}-{n}{extension}"
            n += 1
        return path
