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

    def assert_timestamps_go_on(self, clock_rate: int = 90000) -> None:
        """pts only grow, and follow the wall clock: a step of more than half a second must come
        with as long a wait for the frame (a publisher that stalled, say), give or take 0.25 s.
        A switch that got the next layer's offset wrong jumps without the wait."""
        assert len(self.seen) > 1, "fewer than two frames"
        for (t0, _, _, pts0), (t1, _, _, pts1) in itertools.pairwise(self.seen):
            step = (pts1 - pts0) / clock_rate
            assert step > 0, f"the timestamps went back by {-step:.3f}s at {t1:.2f}"
            assert step <= max(0.5, t1 - t0 + 0.25), (
                f"the timestamps jumped {step:.3f}s at {t1:.2f}, the frame came {t1 - t0:.3f}s"
                " after the one before"
            )

    def stop(self) -> None:
        self.task.cancel()
