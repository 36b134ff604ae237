"""`aiosfu record` as a user meets it: clear errors for bad input, and its status line."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

import pytest

from sfu.record.cli import StatusOutput, main
from sfu.record.participant import FileStatus
from sfu.record.recorder import RecorderEvent
from sfu.server import RunningServer
from tests.record.test_recorder import REPO


def test_a_url_that_is_not_a_websocket_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", "http://127.0.0.1:8080/", "--room", "r", "--out", str(tmp_path)]) == 2
    assert "ws:// or wss://" in capsys.readouterr().err


def test_a_directory_it_cannot_write_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["--room", "r", "--out", str(blocker / "recordings")]) == 2
    assert "cannot write recordings to" in capsys.readouterr().err


async def test_a_join_the_server_refuses_ends_it_with_status_1(
    server: RunningServer, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "sfu.cli", "record", "--url", server.url],
        *["--room", "no spaces allowed", "--out", str(tmp_path)],
        cwd=REPO,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1, err.decode()
    assert "the server refused to let us join: bad_message" in err.decode()


def test_the_status_line_says_who_for_how_long_and_how_much() -> None:
    err = io.StringIO()
    out = StatusOutput(json_lines=False, room="standup", stderr=err)
    assert out.status_line([]) == "… connecting (standup)"
    out.event(RecorderEvent("connected", 0.0, {"peer_id": "p1"}))
    assert out.status_line([]) == "○ standup: nobody to record yet"
    files = [
        FileStatus(Path("a.webm"), "p2", "alice", ("video", "audio"), 0.0, 75.4, 3_500_000, True),
        FileStatus(Path("b.webm"), "p3", None, ("audio",), 0.0, 5.0, 40_000, True),
    ]
    assert out.status_line(files) == (
        "● REC standup · alice 1:15 3.3 MB · p3 0:05 39 KB · 2 files, 3.4 MB"
    )
    assert "joined standup as p1" in err.getvalue()
