"""loadtest.relayjoin runs end to end (one short run per mode) and relays what it says it does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.netns import can_make_namespace
from tests.turnserver import require_coturn


def test_one_run_per_mode(tmp_path: Path) -> None:
    require_coturn()
    if (reason := can_make_namespace()) is not None:
        pytest.skip(reason)
    report = tmp_path / "joins.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.relayjoin",
            "--runs",
            "1",
            "--subscribers",
            "2",
            "--window",
            "2",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    joins = json.loads(report.read_text())["joins"]
    assert [j["pair"] for j in joins["all"]] == ["host/host"] * 2
    assert [j["pair"] for j in joins["turn-only"]] == ["relay/relay"] * 2
    assert all(j["ms"] > 0 for mode in joins.values() for j in mode)
    assert "turn-only  p50" in result.stdout
    costs = json.loads(report.read_text())["server_us_per_packet"]
    assert all(len(costs[mode]) == 1 and costs[mode][0] > 0 for mode in ("all", "turn-only"))
