"""loadtest.report: the one writer (table, then JSON to a file or stdout) and the environment."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

from loadtest import procstat
from loadtest.report import emit, environment, environment_line, json_safe

PAYLOAD = {
    "environment": {"python": "3.11"},
    "config": {"subscribers": [0, 2]},
    "results": [{"n": 0, "us_per_packet": math.nan}, {"n": 2, "us_per_packet": 14.5}],
    "nested": {"ratio": (math.inf, 0.7)},
}
SAFE = {
    "environment": {"python": "3.11"},
    "config": {"subscribers": [0, 2]},
    "results": [{"n": 0, "us_per_packet": None}, {"n": 2, "us_per_packet": 14.5}],
    "nested": {"ratio": [None, 0.7]},
}


def test_nan_is_null_wherever_it_is() -> None:
    assert json_safe(PAYLOAD) == SAFE


def test_json_to_stdout_comes_after_the_table() -> None:
    out = io.StringIO()
    emit("N  µs/pkt\n2  14.5", PAYLOAD, "-", out)
    text = out.getvalue()
    assert text.startswith("\nN  µs/pkt\n2  14.5\n")
    assert json.loads(text[text.index("{") :]) == SAFE


def test_json_to_a_file_and_its_path_on_stdout(tmp_path: Path) -> None:
    out, path = io.StringIO(), tmp_path / "report.json"
    emit("the table", PAYLOAD, str(path), out)
    assert json.loads(path.read_text()) == SAFE and path.read_text().endswith("}\n")
    assert out.getvalue() == f"\nthe table\n\nJSON report: {path}\n"
    out = io.StringIO()
    emit("the table", PAYLOAD, None, out)
    assert out.getvalue() == "\nthe table\n", "no --json: the table only"


def test_environment_says_what_ran_where() -> None:
    pinning = procstat.Pinning(frozenset({0}), frozenset({1}))
    env = environment(pinning, janus="1.1.2")
    assert env["pinning"] == {"server_cpus": [0], "bench_cpus": [1]}
    assert env["pinning_text"] == "CPU pinning on: server on CPU 0, clients on CPU 1"
    assert env["janus"] == "1.1.2" and env["nproc"] == len(os.sched_getaffinity(0))
    assert set(env) >= {"date_utc", "python", "aiortc", "cpus", "cpu_model", "loadavg_at_start"}
    line = environment_line(env)
    assert f"aiosfu {env['aiosfu']}, python {env['python']}" in line
    assert line.endswith("clients on CPU 1")
    assert environment()["pinning"] is None
