"""`aiosfu record` as a process of its own, for tests and the recorder benchmark.

    async with RecorderProcess(server.url, "room", out_dir) as recorder:
        ...
        recorder.events("file_opened")          # its --json events so far
    # stop(): SIGTERM, which finishes every file

It gathers ICE on 127.0.0.1 only. `argv_prefix` replaces `[sys.executable, "-m", "sfu.cli"]`
(e.g. tests.codec_guard, which reports any codec created). Ready once it has joined.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from .child import ChildProcess
from .serverproc import HOST, REPO_ROOT


class RecorderStartError(RuntimeError):
    """The recorder died or did not join in time."""


class RecorderProcess(ChildProcess):
    name = "the recorder process"

    def __init__(
        self,
        url: str,
        room: str,
        out: Path | str,
        *,
        argv_prefix: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
        cpus: AbstractSet[int] | None = None,
    ) -> None:
        self.url, self.room, self.out = url, room, Path(out)
        self.argv_prefix = (
            list(argv_prefix) if argv_prefix is not None else [sys.executable, "-m", "sfu.cli"]
        )
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        super().__init__(cpus)

    @property
    def argv(self) -> list[str]:
        return [
            *self.argv_prefix,
            "record",
            "--url",
            self.url,
            "--room",
            self.room,
            "--out",
            str(self.out),
            "--ice-addresses",
            HOST,
            "--json",
            *self.extra_args,
        ]

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Its JSON events so far (stdout; its logs, on stderr, are the other lines)."""
        found = []
        for line in self.output().split("\n")[:-1]:  # the last one may be half written
            if line.startswith('{"event"'):
                event = json.loads(line)
                if type_ is None or event["event"] == type_:
                    found.append(event)
        return found

    async def start(self) -> RecorderProcess:
        await self._spawn(self.argv, cwd=REPO_ROOT, env=dict(os.environ))
        return self

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self.events("connected"):
            if (rc := self.returncode) is not None:
                raise RecorderStartError(f"the recorder exited with {rc}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise RecorderStartError(
                    f"the recorder did not join within {self.startup_timeout}s:\n"
                    f"{self.output()[-4000:]}"
                )
            await asyncio.sleep(0.05)
