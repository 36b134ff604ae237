"""`aiosfu loadtest`: a tiny scenario end to end (2 rooms x 3 peers, 5 s), and its arguments."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.options import LoadConfig, VideoSpec, parse_video
from loadtest.run import parse_args, plan_peers
from loadtest.serverproc import REPO_ROOT


async def loadtest(tmp_path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    """`aiosfu loadtest ARGS --json ...` in a process of its own: its output and its report."""
    report_path = tmp_path / "report.json"
    argv = ["-m", "sfu.cli", "loadtest", *args, "--json", str(report_path)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = output.decode(errors="replace")
    print(text)
    assert proc.returncode == 0, text
    report: dict[str, Any] = json.loads(report_path.read_text())
    return text, report


async def test_tiny_scenario_reports_frames_for_every_subscriber(tmp_path: Path) -> None:
    # Two worker processes, so the spread over processes and their reports are covered too.
    text, report = await loadtest(
        tmp_path,
        *("--rooms", "2", "--publishers", "1"),
        *("--subscribers", "2", "--duration", "5", "--ramp", "10", "--settle", "1"),
        *("--video", "320x240@30:300"),  # a quicker clip to encode in each worker
        *("--procs", "2"),
    )
    assert "measuring" in text, "the live progress lines"
    assert "join time" in text and "video fps" in text, "the table"
    assert report["peers"] == {"planned": 6, "up": 6, "failed": 0, "failures": []}
    assert report["problems"] == []

    receivers = report["receivers"]
    assert len(receivers) == 4 and len({r["room"] for r in receivers}) == 2
    for r in receivers:
        assert r["error"] is None and r["video_streams"] == 1, r
        assert r["video_frames"] > 0 and r["video_fps"][0] > 5, r
        assert r["join_ms"] is not None and r["join_ms"] > 0, r
        assert 0 <= r["loss_pct"] <= 100, r

    join = report["join_time_ms"]
    assert join["n"] == 4 and 0 < join["p50"] <= join["p95"] <= join["p99"] <= join["max"]
    joins = sorted(r["join_ms"] for r in receivers)
    # Nearest-rank (loadtest.stats.percentile): of 4 values, p50 is the 2nd and p95 the 4th.
    assert (join["p50"], join["p95"]) == pytest.approx((joins[1], joins[3]), abs=0.1)
    video = report["video"]
    assert video["streams"] == 4 and video["target_fps"] == 30 and video["keyframes"] >= 4
    assert 0 < video["fps"]["min"] <= video["fps"]["mean"] <= 31
    assert 0 < video["longest_freeze_ms"]["max"] < 5000
    assert 0 <= report["loss"]["pct"] <= 100 and report["loss"]["expected_packets"] > 0
    assert report["traffic"]["in_mbps"] > 0 and report["traffic"]["out_mbps"] > 0

    server = report["server"]
    assert server["pid"] is not None and server["cpu_pct"] > 0 and server["rss_mb"] > 10
    assert server["forwarded_pps"] > 0, "read from the server's /metrics"
    assert server["us_per_packet"] > 0, "the benchmarks' figure: CPU over packets received"
    assert "µs per forwarded packet" in text
    assert report["config"]["procs"] == 2 and report["window_s"] == 5
    generator = report["load_generator"]
    assert len(generator["worker_cpu_pct"]) == 2, "one figure per worker process"
    assert generator["publisher_fps"]["n"] == 2 and generator["publisher_fps"]["min"] > 5


def test_video_spec_parses_and_refuses_nonsense() -> None:
    assert parse_video("1280x720@15:1200") == VideoSpec(1280, 720, 15, 1200)
    assert parse_video("320x240") == VideoSpec(320, 240, 30, 500)
    for bad in ("640x", "640x360@0:500", "99999x2@30:500", "640x360@30:1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_video(bad)


def test_simulcast_and_the_layer_subscribers_ask_for(capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = parse_args(["--simulcast", "--layer", "mixed"])
    assert config.simulcast and config.layer == "mixed"
    assert parse_args(["--simulcast"])[0].layer == "auto"
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--layer", "l"])
    assert exit_info.value.code == 2
    assert "--layer goes with --simulcast" in capsys.readouterr().err


async def test_simulcast_publishers_and_subscribers_on_each_layer(tmp_path: Path) -> None:
    text, report = await loadtest(
        tmp_path,
        *("--simulcast", "--layer", "mixed"),
        *("--subscribers", "3", "--duration", "4", "--ramp", "10", "--settle", "1"),
        *("--video", "640x360@15:600", "--quiet"),
    )
    assert "as simulcast l/m/h" in text and "layer mixed" in text
    assert report["peers"]["failed"] == 0 and report["problems"] == [], report
    layers = sorted(layer for r in report["receivers"] for layer in r["video_layers"])
    assert layers == ["h", "l", "m"], report["receivers"]  # sub0.0 l, sub0.1 m, sub0.2 h
    for r in report["receivers"]:
        assert r["video_frames"] > 0 and r["video_fps"][0] > 5, r


def test_server_pid_needs_a_url() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--server-pid", "1"])
    config, json_path = parse_args(["--url", "ws://127.0.0.1:1/ws", "--server-pid", "1"])
    assert config.server_pid == 1 and json_path is None


def test_publishers_join_first_and_only_peers_with_a_publisher_before_them_count() -> None:
    specs = plan_peers(LoadConfig(rooms=2, publishers=2, subscribers=1, ramp=4), "r")
    assert [(s.name, s.join_offset, s.expects_media) for s in specs] == [
        ("pub0.0", 0.0, False),  # nobody to receive from when it joins
        ("pub1.0", 0.25, False),
        ("pub0.1", 0.5, True),
        ("pub1.1", 0.75, True),
        ("sub0.0", 1.0, True),
        ("sub1.0", 1.25, True),
    ]
    assert {s.room for s in specs} == {"lt-r-0", "lt-r-1"}
