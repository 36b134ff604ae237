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

    def assert_timestamps_go_on(self, clock_rate: int = 90000, slack: float = 0.5) -> None:
        """pts only grow, and never run ahead of the wall clock: from any earlier frame, a
        frame's pts moved on by no more than the time that passed, give or take `slack`. A
        switch that got the next layer's offset wrong jumps ahead for good; a gap the wall clock
        saw too does not fail it: a publisher that stalled, or frames dropped while this
        consumer lagged behind on a busy machine (its frames then come close together)."""
        assert len(self.seen) > 1, "fewer than two frames"
        # The frame that came soonest for its pts: the least delayed, the fairest reference.
        earliest = self.seen[0][0] - self.seen[0][3] / clock_rate
        for (_, _, _, before), (t, _, _, pts) in itertools.pairwise(self.seen):
            step = (pts - before) / clock_rate
            assert step > 0, f"the timestamps went back by {-step:.3f}s at {t:.2f}"
            lag = t - pts / clock_rate
            assert earliest - lag <= slack, (
                f"at {t:.2f} the timestamps ran {earliest - lag:.3f}s ahead of the wall clock "
                f"(a step of {step:.3f}s)"
            )
            earliest = min(earliest, lag)

    def stop(self) -> None:
        self.task.cancel()
