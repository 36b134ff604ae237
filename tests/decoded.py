"""What a Python subscriber decodes, frame by frame, for tests that watch sizes and timestamps."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from sfu.client import RemoteTrack


class Frames:
    """Every frame a remote track decodes, as it comes: (loop time, width, height, pts)."""

    def __init__(self, remote: RemoteTrack) -> None:
        self.remote = remote
        self.seen: list[tuple[float, int, int, int]] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            frame: Any = await self.remote.track.recv()
            self.seen.append((loop.time(), frame.width, frame.height, frame.pts))

    def first_at(self, size: tuple[int, int], after: float) -> float | None:
        """When the first frame of this size came after `after` (loop time)."""
        return next((t for t, w, h, _ in self.seen if t >= after and (w, h) == size), None)

    def latest_sizes(self, n: int = 3) -> list[tuple[int, int]]:
        return [(w, h) for _, w, h, _ in self.seen[-n:]]

    def assert_timestamps_go_on(self, max_step: int = 45000) -> None:
        """pts only grow, never by more than `max_step` (half a second at 90 kHz)."""
        pts = [p for _, _, _, p in self.seen]
        steps = [b - a for a, b in itertools.pairwise(pts)]
        assert steps and min(steps) > 0, f"timestamps went back: {steps}"
        assert max(steps) <= max_step, f"a gap of {max(steps)} ticks in the timestamps"

    def stop(self) -> None:
        self.task.cancel()
