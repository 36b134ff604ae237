"""loadtest.bench_forward, the hot path's micro-benchmark: it runs and every packet goes out.

Run small: a change to what RtpOutput or Subscription read breaks it here, not in someone's next
measurement. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from loadtest import bench_forward


@pytest.mark.parametrize("simulcast", [False, True])
async def test_every_packet_goes_out_to_every_subscriber(simulcast: bool) -> None:
    result = await bench_forward.run(subscribers=3, packets=300, simulcast=simulcast)
    assert result["forwarded"] == 900, "run() asserts it too"
    assert math.isfinite(result["user_us"]) and math.isfinite(result["system_us"])


def test_its_command_line_prints_the_figure_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hotpath.json"
    assert bench_forward.main(["--subscribers", "2", "--packets", "50", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "µs CPU per forwarded packet" in out and "over 100 packets to 2 subscribers" in out
    report = json.loads(path.read_text())
    assert report["result"]["forwarded"] == 100 and report["config"]["subscribers"] == 2
    assert "pinning_text" in report["environment"]
