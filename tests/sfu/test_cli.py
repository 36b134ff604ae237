"""`aiosfu serve` refuses settings that cannot work, in one line naming the setting (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sfu.cli import duration
from sfu.config import parse_announced, parse_port_range


def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("ICE_", "STUN_", "TURN_", "TLS_"))
    }
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
        ((), {"ICE_PORT_RANGE": "50100-50000"}, "ICE_PORT_RANGE must be FIRST-LAST"),
        (("--ice-port-range", "50000"), {}, "ICE_PORT_RANGE must be FIRST-LAST"),
        ((), {"ICE_ANNOUNCED_ADDRESS": "my.host"}, "ICE_ANNOUNCED_ADDRESS must be a public IP"),
        ((), {"ICE_ANNOUNCED_ADDRESS": "10.0.0.5=2001:db8::7"}, "ICE_ANNOUNCED_ADDRESS must be"),
        (("--ice-addresses", "10.0.0.300"), {}, "ICE_ADDRESSES: '10.0.0.300' is not an IP"),
        ((), {"TLS_CERT": "cert.pem"}, "TLS_CERT and TLS_KEY go together"),
        (("--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"), {}, "TLS_CERT/TLS_KEY cannot"),
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


def test_nat_settings() -> None:
    assert parse_port_range(" 50000-50100 ") == (50000, 50100)
    assert parse_announced("203.0.113.7") == {"": "203.0.113.7"}
    assert parse_announced("10.0.0.5=203.0.113.7, 10.0.1.5=203.0.113.8") == {
        "10.0.0.5": "203.0.113.7",
        "10.0.1.5": "203.0.113.8",
    }
