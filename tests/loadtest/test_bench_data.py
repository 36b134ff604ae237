"""loadtest.bench_data runs, small: a server process, two clients, every message through.
Figures are printed, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import bench_data


def test_it_relays_every_message_and_prints_the_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "data.json"
    argv = ["--messages", "100", "--rate", "50", "--seconds", "1", "--json", str(path)]
    assert bench_data.main(argv) == 0
    out = capsys.readouterr().out
    assert "reliable latency at 50/s: p50" in out and "server CPU" in out
    result = json.loads(path.read_text())["result"]
    for path_taken in ("through the server", "direct (reference)"):
        reliable = result[path_taken]["reliable"]
        assert reliable["latency_ms"]["n"] == 50  # a second at 50/s
        assert reliable["latency_ms"]["lost"] == reliable["throughput"]["lost"] == 0
