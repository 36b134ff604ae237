"""A server a benchmark starts as a process of its own (aiosfu's, Janus), to measure it alone.

Its output (stdout and stderr) goes to a temporary file, never a pipe nobody reads (a full pipe
would block the server's logging); `output()` returns it, also after stop(). `cpus` pins the
process and all its threads (loadtest.procstat.pin_process): right after the spawn, so that the
threads it starts inherit the mask, and again once it is ready, for any thread it started before
the first call. Signals go to its own pid only. A subclass says how to start it (`_spawn()`
from its `start()`) and when it is ready (`_wait_ready()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from . import procstat


class ChildProcess:
    name = "the process"  # for messages

    def __init__(self, cpus: AbstractSet[int] | None = None) -> None:
        self.cpus = frozenset(cpus) if cpus is not None else None
        self._proc: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None
        self._final_output = ""

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far."""
        return procstat.cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        """Resident set size (VmRSS)."""
        return procstat.rss_bytes(self.pid)

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._output is None:
            return self._final_output
        self._output.flush()
        # pread, not seek + read: the child writes through the same open file (and offset), so
        # a seek here would make it write over what it wrote before.
        fd = self._output.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    async def _spawn(
        self, argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        if self._proc is not None:
            raise RuntimeError("already started")
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._output,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            self._pin()
            await self._wait_ready()
            self._pin()  # threads started before the first call kept their mask
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self) -> None:
        raise NotImplementedError

    def _pin(self) -> None:
        if self.cpus is None:
            return
        # A process that died already is reported by _wait_ready, with its output.
        with contextlib.suppress(ProcessLookupError):
            procstat.pin_process(self.pid, self.cpus)

    def send_signal(self, signum: int) -> None:
        """A signal to this process only (e.g. SIGINT, or SIGKILL to test a crash)."""
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL: it gets no chance to clean up (stop() still collects it)."""
        self.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM to this process only, wait, then SIGKILL it if it is still there."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._output is not None:
            self._final_output = self.output()  # still readable after stop()
            self._output.close()
            self._output = None
        return None if proc is None else proc.returncode

    async def start(self) -> Self:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
