"""Helpers shared by the tests: poll a condition that explains itself instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loadtest import procstat


async def eventually(
    check: Callable[[], str], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Poll check() until it returns ""; on timeout, fail with its last reason."""
    deadline = time.monotonic() + timeout
    while reason := check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout}s: {reason}")
        await asyncio.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[str]], timeout: float = 5.0, interval: float = 0.05
) -> None:
    """Like eventually(), for checks that must await (getStats and the like)."""
    deadline = time.monotonic() + timeout
    while reason := await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout}s: {reason}")
        await asyncio.sleep(interval)


async def recv(track: Any, timeout: float = 10.0) -> Any:
    """The next frame (or encoded packet) of a track, typed loosely for assertions."""
    return await asyncio.wait_for(track.recv(), timeout)


# Cores busy (of the 2 of the machines this runs on) above which how long something took says
# more about the machine than about the code (Chromium's rendering, a keyframe decoded late).
SATURATED = 1.6


class MachineLoad:
    """How many cores the whole machine kept busy over a `with` block (every process)."""

    def __enter__(self) -> MachineLoad:
        self._start = (time.monotonic(), procstat.machine_cpu_seconds()[0])
        self.cores = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        t0, busy0 = self._start
        elapsed = time.monotonic() - t0
        self.cores = (procstat.machine_cpu_seconds()[0] - busy0) / elapsed if elapsed else 0.0
