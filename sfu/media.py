"""Synthetic media sources for bots, tests and load peers (no camera needed)."""

from __future__ import annotations

import array
import asyncio
import math
import time

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import (
    VIDEO_CLOCK_RATE,
    VIDEO_TIME_BASE,
    AudioStreamTrack,
    MediaStreamError,
)
from av import AudioFrame
from av.frame import Frame


class TestPatternTrack(MediaStreamTrack):
    """A moving FFmpeg test pattern (`testsrc2`) at a fixed size and frame rate."""

    kind = "video"
    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self._container = av.open(
            f"testsrc2=size={width}x{height}:rate={fps},format=yuv420p", format="lavfi"
        )
        self._frames = self._container.decode(video=0)
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        # Pace to the wall clock, as a camera would.
        if self._start is None:
            self._start = time.monotonic()
        else:
            due = self._start + self._count / self.fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.readyState != "live":
                raise MediaStreamError  # stopped while it slept: its container is closed
        frame: av.VideoFrame = next(self._frames)
        # lavfi marks every frame as an I picture, and encoders obey: that would make every frame
        # a keyframe (and hide a broken keyframe-request path). Let the encoder decide.
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = self._count * VIDEO_CLOCK_RATE // self.fps
        frame.time_base = VIDEO_TIME_BASE
        self._count += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._container.close()


class ToneTrack(AudioStreamTrack):
    """A sine tone (or, while `playing` is False, silence): a bot that speaks, or does not.

    20 ms mono frames at 8 kHz, paced to the wall clock like aiortc's AudioStreamTrack (whose
    silence it sends when not playing); aiortc's sender measures each frame's level and sends it
    in the RFC 6464 header extension, which is what the server ranks speakers by.
    """

    __test__ = False

    def __init__(self, frequency: float = 440.0, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency, self.amplitude = frequency, amplitude
        self.playing = True
        self._phase = 0

    async def recv(self) -> Frame:
        frame = await super().recv()
        assert isinstance(frame, AudioFrame)
        if self.playing:
            n, rate = frame.samples, frame.sample_rate
            step = 2 * math.pi * self.frequency / rate
            peak = self.amplitude * 32767
            samples = array.array(
                "h", (int(peak * math.sin(step * (self._phase + i))) for i in range(n))
            )
            frame.planes[0].update(samples.tobytes())
            self._phase = (self._phase + n) % rate
        return frame
