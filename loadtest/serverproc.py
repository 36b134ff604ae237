"""The server as a process of its own, so a benchmark can measure its CPU and memory alone.

    async with ServerProcess() as server:        # aiosfu serve on a free 127.0.0.1 port
        client = Client(server.url, "room", ice_addresses=["127.0.0.1"])
        before = server.cpu_seconds()

The process listens and gathers ICE candidates on 127.0.0.1 only. Its output and pinning
(`cpus`) are loadtest.child's; a start-up failure quotes the end of its output.

`argv_prefix` replaces `[sys.executable, "-m", "sfu.cli"]` to start the server under a wrapper
module (e.g. a guard that checks nothing is decoded): the wrapper gets the same `serve ...`
arguments and `pid` is the wrapper's process, so it must run the server in that process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

import aiohttp

from .child import ChildProcess

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


class ServerProcess(ChildProcess):
    name = "the server process"

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
        super().__init__(cpus)

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
            # Every peer comes from 127.0.0.1, and a round may put 100 in one room.
            "--max-connections-per-ip",
            "0",
            "--max-participants",
            "0",
            # stop() (SIGTERM) ends a measurement: no drain for peers still connected.
            "--drain-grace",
            "0",
            *self.extra_args,
        ]

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def health_url(self) -> str:
        return f"http://{HOST}:{self.port}/healthz"

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> ServerProcess:
        await self._spawn(self.argv, cwd=self.cwd, env={**os.environ, **self.extra_env})
        return self

    async def _wait_ready(self) -> None:  # it answers /healthz
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
