"""loadtest.switching, small: a few layer switches through aiosfu (Janus: with root and Janus)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest import netns
from loadtest.janus import janus_binary
from loadtest.serverproc import REPO_ROOT
from loadtest.switching import vp8_size


def test_vp8_size_reads_keyframes_only() -> None:
    key = bytes([0x50, 0x2A, 0x00, 0x9D, 0x01, 0x2A]) + (640).to_bytes(2, "little")
    key += (480).to_bytes(2, "little")
    assert vp8_size(key) == (640, 480)
    assert vp8_size(bytes([0x51]) + key[1:]) is None  # an inter frame
    assert vp8_size(key[:9]) is None


@pytest.mark.parametrize(
    "servers",
    [
        "aiosfu",
        pytest.param(
            "janus",
            marks=[
                pytest.mark.skipif(janus_binary() is None, reason="janus is not installed"),
                pytest.mark.skipif(netns.can_make_namespace() is not None, reason="needs root"),
            ],
        ),
    ],
)
def test_every_switch_completes_and_is_timed(servers: str, tmp_path: Path) -> None:
    out = tmp_path / "switching.json"
    argv = ["--servers", servers, "--switches", "3", "--interval", "0.8", "--json", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.switching", *argv],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = json.loads(out.read_text())["results"]
    assert [s["layer"] for s in result["switches"]] == ["m", "h", "l"]
    assert all(0 < s["switch_s"] < 5 for s in result["switches"]), result
    assert "switch time p50" in done.stdout
