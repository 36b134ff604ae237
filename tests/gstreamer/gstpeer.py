"""Runs tests/gstreamer/peer.py (a webrtcbin participant) under the system Python, and keeps what
it reports: its peer_id, the frames it decoded per publisher, the errors it saw."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = Path("/usr/bin/python3")
PEER = Path(__file__).with_name("peer.py")


@cache
def gstreamer_missing() -> str:
    """Why webrtcbin peers cannot run here ('' when they can)."""
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    try:
        done = subprocess.run(
            [str(SYSTEM_PYTHON), str(PEER), "--check"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "GStreamer did not start within 30 s"
    if done.returncode == 0:
        return ""
    if done.stdout:
        return f"GStreamer elements missing: {json.loads(done.stdout)['missing']}"
    return f"no GStreamer for {SYSTEM_PYTHON}: {done.stderr.strip().splitlines()[-1:]}"


class GstPeer:
    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.peer_id: str | None = None
        self.version: str | None = None
        self.frames: dict[str, int] = {}  # decoded video frames per publisher peer_id
        self.sizes: dict[str, tuple[int, int]] = {}
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []  # server errors and GStreamer errors
        self.stderr: deque[str] = deque(maxlen=20)
        self._tasks = [
            asyncio.ensure_future(self._read_events()),
            asyncio.ensure_future(self._read_stderr()),
        ]

    @classmethod
    async def start(cls, url: str, room: str, name: str, *, publish: bool = False) -> GstPeer:
        process = await asyncio.create_subprocess_exec(
            str(SYSTEM_PYTHON),
            str(PEER),
            url,
            room,
            name,
            *(["--publish"] if publish else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(name, process)

    async def _read_events(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event: dict[str, Any] = json.loads(line)
            self.events.append(event)
            kind = event["event"]
            if kind == "started":
                self.version = event["gstreamer"]
            elif kind == "welcome":
                self.peer_id = event["peer_id"]
            elif kind == "frames":
                self.frames[event["peer_id"]] = event["count"]
                self.sizes[event["peer_id"]] = (event["width"], event["height"])
            elif kind in ("server_error", "gst_error"):
                self.errors.append(event)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def count(self, kind: str, **fields: Any) -> int:
        """How many events of this kind (with these field values) it reported."""
        return sum(
            1
            for e in self.events
            if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())
        )

    def describe(self) -> str:
        """For failure messages: what it reported last, and its last stderr lines."""
        return (
            f"{self.name}: exit {self.process.returncode}, last events {self.events[-5:]},"
            f" errors {self.errors}, stderr {list(self.stderr)[-5:]}"
        )

    async def close(self) -> None:
        """Leave the room (a `leave` line on stdin); kill it if it has not exited in 10 s."""
        if self.process.returncode is None:
            assert self.process.stdin is not None
            with contextlib.suppress(ConnectionError):
                self.process.stdin.write(b"leave\n")
                await self.process.stdin.drain()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
