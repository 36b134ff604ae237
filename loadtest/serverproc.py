"""The server as a process of its own, so a benchmark can measure its CPU and memory alone.

    async with ServerProcess() as server:        # aiosfu serve on a free 127.0.0.1 port
        client = Client(server.url, "room", ice_addresses=["127.0.0.1"])
        before = server.cpu_seconds()

The process listens and gathers ICE candidates on 127.0.0.1 only. Its output (stdout and
stderr) goes to a temporary file, never a pipe nobody reads (a full pipe would block the
server's logging); `output()` returns it, and a start-up failure quotes its end.

`argv_prefix` replaces `[sys.executable, "-m", "sfu.cli"]` to start the server under a wrapper
module (e.g. a guard that checks nothing is decoded): the wrapper gets the same `serve ...`
arguments and `pid` is the wrapper's process, so it must run the server in that process.

`cpus` pins the process and all its threads to those CPUs (loadtest.procstat.pin_process):
right after the spawn, so that the threads it starts inherit the mask, and again once it answers
/healthz, for any thread it started before the first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import TracebackType
from typing import IO

import aiohttp

from . import procstat

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]


class ServerStartError(RuntimeError):
    """The server process died or did not answer /healthz in time."""


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    def __init__(
        self,
        *,
        port: int | None = None,
        ice_addresses: Sequence[str] = (HOST,),
        argv_prefix: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        startup_timeout: float = 20.0,
        cpus: AbstractSet[int] | None = None,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.ice_addresses = list(ice_addresses)
        self.argv_prefix = (
            list(argv_prefix) if argv_prefix is not None else [sys.executable, "-m", "sfu.cli"]
        )
        self.extra_args = list(extra_args)
        self.extra_env = dict(env or {})
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.startup_timeout = startup_timeout
        self.cpus = frozenset(cpus) if cpus is not None else None
        self._proc: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None
        self._final_output = ""

    # --- what a benchmark reads --------------------------------------------------------------

    @property
    def argv(self) -> list[str]:
        return [
            *self.argv_prefix,
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--ice-addresses",
            ",".join(self.ice_addresses),
            *self.extra_args,
        ]

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the server process is not started")
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.port}/healthz"

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process (all its threads) so far."""
        with open(f"/proc/{self.pid}/stat") as f:
            stat = f.read()
        # The command name (field 2) may hold spaces and parentheses: split after its end.
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """Resident set size (VmRSS)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # reported in kB
        raise RuntimeError(f"no VmRSS for pid {self.pid} (a zombie?)")

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        if self._output is None:
            return self._final_output
        self._output.flush()
        with open(self._output.fileno(), "rb", closefd=False) as f:
            f.seek(0)
            return f.read().decode(errors="replace")

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> ServerProcess:
        if self._proc is not None:
            raise RuntimeError("already started")
        # Open for the process's lifetime, closed by stop().
        self._output = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            env={**os.environ, **self.extra_env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._output,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            self._pin()
            await self._wait_healthy()
            self._pin()  # threads started before the first call kept their mask
        except BaseException:
            await self.stop()
            raise
        return self

    def _pin(self) -> None:
        if self.cpus is None:
            return
        # A process that died already is reported by _wait_healthy, with its output.
        with contextlib.suppress(ProcessLookupError):
            procstat.pin_process(self.pid, self.cpus)

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "no answer yet"
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if (rc := self.returncode) is not None:
                    raise ServerStartError(
                        f"the server exited with status {rc} before answering "
                        f"{self.health_url}; argv={self.argv}\n--- its output ---\n"
                        f"{self._tail()}"
                    )
                try:
                    async with session.get(self.health_url) as response:
                        if response.status == 200:
                            return
                        last_error = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # aiohttp's timeout can turn our own cancellation into a TimeoutError.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from exc
                    last_error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"the server (pid {self.pid}) did not answer {self.health_url} within "
                        f"{self.startup_timeout}s ({last_error}); argv={self.argv}\n"
                        f"--- its output ---\n{self._tail()}"
                    )
                await asyncio.sleep(0.1)

    def _tail(self, chars: int = 4000) -> str:
        text = self.output()
        return text if len(text) <= chars else "..." + text[-chars:]

    async def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM to this process only, wait, then SIGKILL it if it is still there."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            # Signals go to this pid only (not to a process group), while it is not yet reaped.
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                os.kill(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                await proc.wait()
        if self._output is not None:
            # Keep the output readable after stop().
            self._final_output = self.output()
            self._output.close()
            self._output = None
        return proc.returncode

    async def __aenter__(self) -> ServerProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
