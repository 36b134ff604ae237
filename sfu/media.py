"""Synthetic media sources for bots, tests and load peers (no camera needed)."""

from __future__ import annotations

import asyncio
import time

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError


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
