"""Publishers whose audio and video carry sync marks, and the measure of them in a file.

Both tracks follow one clock from one epoch: the video is dark but for a white frame at the
start of every second, the audio silent but for a 1 kHz beep over the first 100 ms of every
second. In a recording, each flash and the beep of the same second must start together: the
difference is the A/V offset the recording added.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import time
from pathlib import Path
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

AUDIO_RATE, AUDIO_SAMPLES = 48_000, 960  # 20 ms frames
BEEP_SECONDS = 0.1


class SyncClock:
    """The epoch both tracks of a publisher pace from."""

    def __init__(self) -> None:
        self.epoch: float | None = None

    def start(self) -> float:
        if self.epoch is None:
            self.epoch = time.monotonic()
        return self.epoch


async def _until(clock: SyncClock, offset: float) -> None:
    await asyncio.sleep(max(0.0, clock.start() + offset - time.monotonic()))


class FlashTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, clock: SyncClock, width: int = 320, height: int = 240, fps: int = 15):
        super().__init__()
        self.clock, self.width, self.height, self.fps = clock, width, height, fps
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await _until(self.clock, self.count / self.fps)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        luma = 235 if self.count % self.fps == 0 else 16
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([luma if n == 0 else 128]) * plane.buffer_size)
        frame.pts = self.count * 90_000 // self.fps
        frame.time_base = fractions.Fraction(1, 90_000)
        self.count += 1
        return frame


class BeepTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, clock: SyncClock) -> None:
        super().__init__()
        self.clock = clock
        self.count = 0
        beep = array.array("h")
        for n in range(AUDIO_SAMPLES):
            beep.append(int(12_000 * math.sin(2 * math.pi * 1000 * n / AUDIO_RATE)))
        self._beep, self._silence = beep.tobytes(), bytes(2 * AUDIO_SAMPLES)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        start = self.count * AUDIO_SAMPLES / AUDIO_RATE
        await _until(self.clock, start)
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        beeping = start % 1.0 < BEEP_SECONDS - 1e-9
        frame.planes[0].update(self._beep if beeping else self._silence)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self.count * AUDIO_SAMPLES
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self.count += 1
        return frame


def sync_tracks(fps: int = 15) -> tuple[FlashTrack, BeepTrack]:
    clock = SyncClock()
    return FlashTrack(clock, fps=fps), BeepTrack(clock)


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
