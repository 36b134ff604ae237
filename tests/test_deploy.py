"""What a deployer copies stays true: every `aiosfu serve` setting is in the README's
configuration table and in deploy/aiosfu.env (nothing else is), and the systemd unit is one
systemd accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "aiosfu.service"
ENV_FILE = ROOT / "deploy" / "aiosfu.env"


def serve_settings() -> set[str]:
    """The environment variable of every `aiosfu serve` flag (--turn-ttl: TURN_TTL)."""
    usage = subprocess.run(
        [sys.executable, "-m", "sfu.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flags = set(re.findall(r"^\s+(--[a-z][a-z-]+)", usage, re.M)) - {"--help"}
    return {flag[2:].upper().replace("-", "_") for flag in flags}


def test_every_setting_is_in_the_readme_table() -> None:
    table = "\n".join(
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")
    )
    missing = sorted(s for s in serve_settings() if f"`{s}`" not in table)
    assert not missing, f"not in README's configuration tables: {missing}"


def test_the_environment_file_names_every_setting_and_nothing_else() -> None:
    named = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", ENV_FILE.read_text(), re.M))
    settings = serve_settings()
    assert named - settings == set(), "deploy/aiosfu.env sets what aiosfu does not read"
    assert settings - named == set(), "deploy/aiosfu.env leaves settings out"


def test_the_unit_is_valid(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert "ExecStart=/opt/aiosfu/venv/bin/aiosfu serve\n" in text
    assert "EnvironmentFile=/etc/aiosfu/aiosfu.env\n" in text
    assert "RestartPreventExitStatus=2\n" in text  # a setting that cannot work: no loop
    verify = shutil.which("systemd-analyze")
    if verify is None:
        pytest.skip("systemd-analyze is not installed")
    aiosfu = Path(sys.executable).with_name("aiosfu")
    unit = tmp_path / "aiosfu.service"
    unit.write_text(
        text.replace("/opt/aiosfu/venv/bin/aiosfu", str(aiosfu)).replace(
            "/etc/aiosfu/aiosfu.env", str(ENV_FILE)
        )
    )
    result = subprocess.run([verify, "verify", str(unit)], capture_output=True, text=True)
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stderr
