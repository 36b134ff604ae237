"""loadtest.bench_audiolevel runs, small: every packet is received, its level read, and forwarded.
Figures are printed, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import bench_audiolevel


def test_it_reads_every_level_and_forwards_every_packet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "levels.json"
    argv = ["--subscribers", "2", "--packets", "200", "--rounds", "1", "--json", str(path)]
    assert bench_audiolevel.main(argv) == 0  # run() asserts the counts
    out = capsys.readouterr().out
    assert "level read: µs CPU/forwarded" in out and "level not read" in out
    best = json.loads(path.read_text())["result"]["best"]
    assert len(best) == 4 and all(value > 0 for value in best.values())
