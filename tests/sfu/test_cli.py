"""`aiosfu serve` refuses settings that cannot work, in one line naming the setting (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sfu.cli import duration


def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ICE_", "STUN_", "TURN_"))}
    return subprocess.run(
        [sys.executable, "-m", "sfu.cli", "serve", "--port", "0", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"ICE_MODE": "turn-only"}, "ICE_MODE=turn-only needs TURN_URLS"),
        (("--ice-mode", "stun-only"), {}, "ICE_MODE=stun-only needs STUN_URLS"),
        ((), {"TURN_URLS": "turn:127.0.0.1"}, "TURN_URLS needs credentials"),
        (("--turn-urls", "127.0.0.1:3478", "--turn-secret", "x"), {}, "TURN_URLS: "),
    ],
)
def test_refuses_to_start_in_one_line(
    args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = serve(*args, **env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"aiosfu serve: {message}"), line
    assert result.stdout == ""


def test_turn_ttl_takes_units() -> None:
    assert [duration(v) for v in ("90", "90s", "30m", "1h", "1d", "0.5h")] == [
        90,
        90,
        1800,
        3600,
        86400,
        1800,
    ]
    for bad in ("", "h", "-5", "0", "1w", "soon"):
        with pytest.raises(Exception, match="duration"):
            duration(bad)
