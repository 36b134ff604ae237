"""Publishers whose audio and video carry sync marks, and the measure of them in a file.

Both tracks follow one clock from one epoch: the video is dark but for a white frame at the
start of every second, the audio silent but for a 1 kHz beep over the first 100 ms of every
second. In a recording, each flash and the beep of the same second must start together: the
difference is the A/V offset the recording added.

The marks are encoded once (one second of each, the video's first frame a keyframe) and sent as
loadtest.clip does, each frame stamped with the time it is sent: aiortc pairs the wall clock of
*sending* a frame with its RTP timestamp in its sender reports, so a publisher that encoded live,
or sent late frames with the times they were due, would put that delay (video's differs from
audio's, and grows on a loaded machine) into every report: sync is the publisher's to get right,
and what is measured here is what the recording adds.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import functools
import math
import time
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

FPS, WIDTH, HEIGHT = 15, 320, 240
AUDIO_RATE, AUDIO_SAMPLES = 48_000, 960  # 20 ms frames
BEEP_FRAMES = 5  # 100 ms


@functools.cache
def video_second() -> tuple[bytes, ...]:
    """One second of VP8: a white keyframe, then dark frames."""
    encoder: Any = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.bit_rate = 300_000
    encoder.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    frames: list[bytes] = []
    for n in range(FPS):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(235 if n == 0 else 16) if i == 0 else 128]) * plane.buffer_size)
        frame.pts = n
        frame.pict_type = (
            av.video.frame.PictureType.I if n == 0 else av.video.frame.PictureType.NONE
        )
        frames.extend(bytes(p) for p in encoder.encode(frame))
    frames.extend(bytes(p) for p in encoder.encode(None))
    assert len(frames) == FPS and not frames[0][0] & 1, "one second, a keyframe first"
    return tuple(frames)


@functools.cache
def audio_second() -> tuple[bytes, ...]:
    """One second of Opus: a 1 kHz beep for 100 ms, then silence."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = AUDIO_RATE, "mono", "s16"
    encoder.options = {"application": "voip"}
    encoder.open()
    beep = array.array("h")
    for n in range(AUDIO_SAMPLES):
        beep.append(int(12_000 * math.sin(2 * math.pi * 1000 * n / AUDIO_RATE)))
    packets: list[bytes] = []
    for n in range(AUDIO_RATE // AUDIO_SAMPLES + 1):  # one more: libopus lags a frame
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(beep.tobytes() if n < BEEP_FRAMES else bytes(2 * AUDIO_SAMPLES))
        frame.sample_rate, frame.pts = AUDIO_RATE, n * AUDIO_SAMPLES
        packets.extend(bytes(p) for p in encoder.encode(frame))
    return tuple(packets[: AUDIO_RATE // AUDIO_SAMPLES])


class _Clock:
    """The epoch both tracks of a publisher take their frames' times from."""

    def __init__(self) -> None:
        self.epoch: float | None = None

    async def next_slot(self, last: int, period: float) -> int:
        """Wait for the slot after `last` (slots are `period` long from the epoch); the slot it
        is now, later than that one if this loop was held up: a frame is stamped when it is
        sent, as a camera stamps it when it is captured."""
        if self.epoch is None:
            self.epoch = time.monotonic()
        await asyncio.sleep(max(0.0, self.epoch + (last + 1) * period - time.monotonic()))
        return max(last + 1, int((time.monotonic() - self.epoch) / period))


class FlashTrack(MediaStreamTrack):
    """The frame at the start of each second is the white keyframe, the others dark deltas (a
    second whose first frame this loop was too late for gets no flash: a mark is always on
    time, or missing)."""

    kind = "video"

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock, self.slot, self.frames = clock, -1, video_second()
        self.delta = 0
        self.skipped = 0  # slots this loop was too late for

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        last, self.slot = self.slot, await self.clock.next_slot(self.slot, 1 / FPS)
        self.skipped += self.slot - last - 1 if last >= 0 else 0
        if last < 0 or self.slot % FPS == 0:
            data, self.delta = self.frames[0], 0  # the first frame must be a keyframe
        else:
            self.delta = self.delta % (FPS - 1) + 1
            data = self.frames[self.delta]
        packet = av.Packet(data)
        packet.pts = self.slot * 90_000 // FPS
        packet.time_base = fractions.Fraction(1, 90_000)
        return packet


class BeepTrack(MediaStreamTrack):
    """Each second starts with BEEP_FRAMES frames of beep, then silence (no beep in a second
    whose first frame this loop was too late for)."""

    kind = "audio"

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock, self.slot, self.packets = clock, -1, audio_second()
        self.skipped = 0
        self._beeping = -1  # the second whose beep is being sent

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        last, self.slot = (
            self.slot,
            await self.clock.next_slot(self.slot, AUDIO_SAMPLES / AUDIO_RATE),
        )
        self.skipped += self.slot - last - 1 if last >= 0 else 0
        second, index = divmod(self.slot, len(self.packets))
        if index == 0:
            self._beeping = second
        beep = second == self._beeping and index < BEEP_FRAMES
        packet = av.Packet(self.packets[index if beep else len(self.packets) - 1])
        packet.pts = self.slot * AUDIO_SAMPLES
        packet.time_base = fractions.Fraction(1, AUDIO_RATE)
        return packet


def sync_tracks() -> tuple[FlashTrack, BeepTrack]:
    clock = _Clock()
    return FlashTrack(clock), BeepTrack(clock)


def flashes(path: Path) -> list[float]:
    """Times of the frames that are bright after a dark one."""
    times, was_bright = [], False
    with av.open(str(path)) as container:
        frame: Any
        for frame in container.decode(video=0):
            luma = bytes(frame.planes[0])[::97]
            bright = sum(luma) / len(luma) > 128
            if bright and not was_bright:
                times.append(float(frame.time))
            was_bright = bright
    return times


def beeps(path: Path) -> list[float]:
    """Times where the audio turns loud after 0.3 s of quiet, to the millisecond."""
    times, last_loud = [], -10.0
    with av.open(str(path)) as container:
        frame: Any
        for frame in container.decode(audio=0):
            samples = array.array("f", bytes(frame.planes[0]))[: frame.samples]
            step = frame.sample_rate // 1000
            for start in range(0, len(samples), step):
                if max(abs(v) for v in samples[start : start + step]) > 0.1:
                    t = float(frame.time) + start / frame.sample_rate
                    if t - last_loud > 0.3:
                        times.append(t)
                    last_loud = t
    return times


def av_offsets(path: Path) -> list[float]:
    """For each flash, the nearest beep onset minus the flash (seconds; positive: audio late)."""
    onsets = beeps(path)
    offsets = []
    for flash in flashes(path):
        nearest = min(onsets, key=lambda b: abs(b - flash), default=None)
        if nearest is not None and abs(nearest - flash) < 0.5:
            offsets.append(nearest - flash)
    return offsets
