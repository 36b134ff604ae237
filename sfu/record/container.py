"""MediaFile: one recording file, muxed by PyAV (FFmpeg's Matroska muxer) from encoded frames.

WebM when every track is VP8, VP9 or Opus; Matroska otherwise (H.264). The streams are made with
`add_mux_stream`: no codec context, so no encoder or decoder exists in the process.

A file that survives a crash: FFmpeg writes the header first with a Segment of unknown size,
then each cluster as it ends. Clusters here last at most a second (`cluster_time_limit`, and a
video keyframe starts one), the muxer's interleaving queue holds at most half a second
(`max_interleave_delta`), and every finished cluster goes straight to the file
(`flush_packets`, through an unbuffered file object). A recorder killed without warning leaves
a file that plays up to its last finished cluster: no cues and no duration, which players
rebuild by reading it. `close()` writes them (FFmpeg's trailer).

The Opus track's header: FFmpeg writes Matroska's CodecPrivate (the `OpusHead` a player needs)
and the channel count from codec parameters that PyAV sets only through an encoder or decoder
context, which the bot must not have. So the track gets a 19-byte name as a placeholder, and the
file object swaps that Name element (2-byte ID, 1-byte size, 19 bytes) for a CodecPrivate of
exactly the same length as the header goes to disk (and again when the trailer rewrites the
header), and the channel count 0 for 2 in the same track entry. No byte moves, so FFmpeg's own
offsets (seek head, cues) stay right. The CRC-32 elements Matroska allows are turned off: they
would no longer match.
"""

from __future__ import annotations

import datetime
import fractions
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import av

from .codecs import codec_info, container_for, opus_head

logger = logging.getLogger(__name__)

CLUSTER_SECONDS: Final = 1.0  # the most media a killed recorder loses, plus the queue below
INTERLEAVE_SECONDS: Final = 0.5

_NAME: Final = "aiosfu:opus-header!"  # a track name as long as the OpusHead it stands for
_PLACEHOLDER: Final = bytes(_NAME, "ascii")
_NAME_ID, _CODEC_PRIVATE_ID = b"\x53\x6e", b"\x63\xa2"
_AUDIO_ID, _CHANNELS_ID = 0xE1, b"\x9f"
assert len(_PLACEHOLDER) == len(opus_head()) < 127  # one-byte EBML size either way


@dataclass(frozen=True)
class StreamSpec:
    """One track of a file, as its header declares it."""

    kind: str  # "audio" or "video"
    codec: str  # RTP MIME type, e.g. "video/VP8"
    clock_rate: int  # of the timestamps handed to write()
    width: int = 0
    height: int = 0


class MediaFile:
    """Write encoded frames of a few streams into one WebM/Matroska file.

    `write()` takes each stream's frames in order (pts in that stream's clock, never going
    back); streams interleave as they come. Synchronous: a frame is a few microseconds of
    muxing, and a finished cluster one write to an unbuffered file.
    """

    def __init__(
        self, path: Path, streams: Sequence[StreamSpec], start_time: float | None = None
    ) -> None:
        formats = [s.codec for s in streams]
        self.format, extension = container_for(formats)
        assert path.suffix == extension, f"{path.name}: a {self.format} file is {extension}"
        self.path = path
        self.specs = list(streams)
        self._file = _HeaderFile(path)
        self._container: Any = av.open(
            self._file,
            "w",
            format=self.format,
            options={
                "cluster_time_limit": str(int(CLUSTER_SECONDS * 1000)),
                "max_interleave_delta": str(int(INTERLEAVE_SECONDS * 1_000_000)),
                "flush_packets": "1",
                "write_crc32": "0",
            },
        )
        if start_time is not None:  # Matroska's DateUTC: when time 0 of the file was
            when = datetime.datetime.fromtimestamp(start_time, datetime.UTC)
            self._container.metadata["creation_time"] = when.isoformat(timespec="microseconds")
        self._streams: list[Any] = []
        self._time_bases: list[fractions.Fraction] = []
        for spec in streams:
            info = codec_info(spec.codec)
            if info is None:
                raise ValueError(f"cannot record {spec.codec}")
            if spec.kind == "video":
                stream = self._container.add_mux_stream(
                    info.ffmpeg_name, width=spec.width, height=spec.height
                )
            else:
                stream = self._container.add_mux_stream(info.ffmpeg_name, rate=spec.clock_rate)
                if info.ffmpeg_name == "opus":
                    stream.metadata["title"] = _NAME
            time_base = fractions.Fraction(1, spec.clock_rate)
            stream.time_base = time_base
            self._streams.append(stream)
            self._time_bases.append(time_base)
        self.frames = [0] * len(streams)
        self.last_pts: list[int | None] = [None] * len(streams)
        self.closed = False

    @property
    def bytes_written(self) -> int:
        return self._file.size

    def seconds(self) -> float:
        """The latest frame's time in the file."""
        times = [
            pts / spec.clock_rate
            for pts, spec in zip(self.last_pts, self.specs, strict=True)
            if pts is not None
        ]
        return max(times, default=0.0)

    def write(self, index: int, data: bytes, pts: int, keyframe: bool) -> None:
        last = self.last_pts[index]
        if last is not None and pts <= last:
            raise ValueError(f"stream {index}: pts {pts} after {last}")
        packet = av.Packet(data)
        packet.stream = self._streams[index]
        packet.time_base = self._time_bases[index]
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self._container.mux_one(packet)
        self.frames[index] += 1
        self.last_pts[index] = pts

    def close(self) -> None:
        """Write the trailer (cues, duration) and close the file. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            if any(self.frames):
                self._container.close()
        finally:
            self._file.close()
        if self._file.headers and not self._file.patched:
            logger.error("%s: the Opus header was not written", self.path)


class _HeaderFile(io.RawIOBase):
    """The file FFmpeg writes to, unbuffered: completes the Opus track entries (see above)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("xb", buffering=0)  # never overwrite an earlier recording
        self.size = 0
        self.headers = 0  # writes that carried a placeholder
        self.patched = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        if _PLACEHOLDER in chunk:
            self.headers += 1
            chunk = _complete_opus_entries(chunk)
            self.patched += 1
        written = self._file.write(chunk)
        self.size = max(self.size, self._file.tell())
        return len(chunk) if written is None else written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        super().close()


def _complete_opus_entries(chunk: bytes) -> bytes:
    name = _NAME_ID + bytes([0x80 | len(_PLACEHOLDER)]) + _PLACEHOLDER
    private = _CODEC_PRIVATE_ID + bytes([0x80 | len(opus_head())]) + opus_head()
    out = bytearray(chunk)
    start = out.find(name)
    while start != -1:
        out[start : start + len(name)] = private
        # The Audio master of the same entry comes after the name: Channels (1 byte) 0 -> 2.
        channels = out.find(_CHANNELS_ID + b"\x81\x00", start)
        if channels != -1 and out[channels - 2] == _AUDIO_ID:
            out[channels + 2] = 2
        start = out.find(name, start)
    return bytes(out)
