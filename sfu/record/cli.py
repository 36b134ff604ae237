"""`aiosfu record`: record a room, one file per participant, until SIGINT or SIGTERM.

    aiosfu record --url ws://127.0.0.1:8080/ws --room standup --out recordings

A live status line on stderr says who is being recorded, for how long, and the bytes written,
with a line for each file opened or finished and each reconnection. `--json` prints the same as
events instead, one JSON object per line on stdout (`{"event": "file_opened", ...}`), with a
`status` event every second. SIGINT or SIGTERM finishes every file (exit status 0); a server
that refuses the recorder (e.g. its token) ends it with status 1. Environment: AIOSFU_URL,
AIOSFU_TOKEN, ICE_ADDRESSES, LOG_LEVEL (flags win).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from sfu.client import RemoteTrack

from .participant import FileStatus
from .recorder import Recorder, RecorderError, RecorderEvent

STATUS_INTERVAL = 1.0  # seconds between status lines (events, with --json)
PLAIN_STATUS_INTERVAL = 10.0  # when stderr is not a terminal: a line now and then, not a flood


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="aiosfu record",
        description="Record a room of an aiosfu server: one WebM (Matroska for H.264) file per "
        "participant, from the encoded media, until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--url", default=env.get("AIOSFU_URL", "ws://127.0.0.1:8080/ws"), help="the /ws URL"
    )
    parser.add_argument("--room", required=True, help="the room to record")
    parser.add_argument("--out", default="recordings", help="directory for the files")
    parser.add_argument("--token", default=env.get("AIOSFU_TOKEN"), help="room token, if needed")
    parser.add_argument("--name", default="recorder", help="the name the others see")
    parser.add_argument(
        "--participant",
        action="append",
        metavar="NAME",
        help="record only this participant (by name; repeat for more)",
    )
    parser.add_argument(
        "--kind",
        action="append",
        choices=("audio", "video"),
        help="record only tracks of this kind (repeat for both)",
    )
    parser.add_argument(
        "--ice-addresses",
        default=env.get("ICE_ADDRESSES"),
        help="comma-separated local IPs to gather ICE candidates on (default: every interface "
        "but loopback)",
    )
    parser.add_argument("--json", action="store_true", help="print events as JSON lines")
    parser.add_argument("--log-level", default=env.get("LOG_LEVEL", "WARNING"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.url.startswith(("ws://", "wss://")):
        sys.stderr.write(f"aiosfu record: --url must be a ws:// or wss:// URL, not {args.url!r}\n")
        return 2
    try:  # say so now rather than when the first participant arrives
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=args.out):
            pass
    except OSError as exc:
        sys.stderr.write(f"aiosfu record: cannot write recordings to {args.out}: {exc}\n")
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return asyncio.run(_record(args))


async def _record(args: argparse.Namespace) -> int:
    out = StatusOutput(json_lines=args.json, room=args.room)
    names = set(args.participant or [])
    kinds = set(args.kind or ["audio", "video"])

    def select(remote: RemoteTrack, name: str | None) -> bool:
        return remote.kind in kinds and (not names or name in names)

    addresses = [a.strip() for a in (args.ice_addresses or "").split(",") if a.strip()]
    recorder = Recorder(
        args.url,
        args.room,
        args.out,
        token=args.token,
        name=args.name,
        select=select,
        ice_addresses=addresses or None,
        on_event=out.event,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, recorder.stop)
    status = asyncio.ensure_future(out.status_forever(recorder))
    try:
        await recorder.run()
    except RecorderError as exc:
        out.error(str(exc))
        return 1
    finally:
        status.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await status
        out.summary(recorder.files)
    return 0


class StatusOutput:
    """The status line and event lines (stderr), or JSON lines (stdout)."""

    def __init__(
        self,
        *,
        json_lines: bool,
        room: str,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_lines = json_lines
        self.room = room
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.tty = self.stderr.isatty()
        self.state = "connecting"
        self._line_shown = False

    def event(self, event: RecorderEvent) -> None:
        if self.json_lines:
            self._json(event.to_json())
            return
        data = event.data
        if event.type == "connected":
            self.state = "recording"
            self._say(f"joined {self.room} as {data.get('peer_id')}")
        elif event.type == "disconnected":
            self.state = "reconnecting"
            self._say(
                f"lost the session ({data.get('reason')}): joining again in "
                f"{data.get('retry_in')} s"
            )
        elif event.type == "file_opened":
            self._say(f"recording {data.get('name') or data.get('peer_id')} to {data['path']}")
        elif event.type == "file_closed":
            self._say(
                f"finished {data['path']} ({data['reason']}): {_duration(data['seconds'])}, "
                f"{_size(data['bytes'])}"
            )

    async def status_forever(self, recorder: Recorder) -> None:
        last_plain = 0.0
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            files = recorder.status()
            if self.json_lines:
                self._json(
                    {
                        "event": "status",
                        "files": [
                            {
                                "path": str(f.path),
                                "name": f.name,
                                "peer_id": f.peer_id,
                                "seconds": round(f.seconds, 1),
                                "bytes": f.bytes,
                            }
                            for f in files
                        ],
                    }
                )
            elif self.tty:
                self._show(self.status_line(files))
            elif time.monotonic() - last_plain >= PLAIN_STATUS_INTERVAL:
                last_plain = time.monotonic()
                self._say(self.status_line(files))

    def status_line(self, files: list[FileStatus]) -> str:
        if self.state != "recording":
            return f"… {self.state} ({self.room})"
        if not files:
            return f"○ {self.room}: nobody to record yet"
        who = " · ".join(
            f"{f.name or f.peer_id} {_duration(f.seconds)} {_size(f.bytes)}" for f in files
        )
        total = sum(f.bytes for f in files)
        count = f"{len(files)} file" + ("s" if len(files) != 1 else "")
        return f"● REC {self.room} · {who} · {count}, {_size(total)}"

    def error(self, message: str) -> None:
        if self.json_lines:
            self._json({"event": "error", "message": message})
        self._say(f"error: {message}")

    def summary(self, files: list[FileStatus]) -> None:
        if self.json_lines:
            return
        self._say(f"{len(files)} files recorded")
        for f in files:
            self._say(f"  {f.path}  {_duration(f.seconds)}  {_size(f.bytes)}")

    def _json(self, obj: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(obj) + "\n")
        self.stdout.flush()

    def _say(self, line: str) -> None:
        self._show(line)
        self.stderr.write("\n")
        self._line_shown = False
        self.stderr.flush()

    def _show(self, line: str) -> None:
        if self.tty:
            self.stderr.write("\r\x1b[K" + line)
            self._line_shown = True
        else:
            self.stderr.write(line)
        self.stderr.flush()


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _size(n: int) -> str:
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n / (1024 * 1024):.1f} MB"
