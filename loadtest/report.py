"""The one report writer: every harness prints its table and writes its JSON report here.

Each JSON report opens with `environment` (environment(): the commit, the machine, versions,
CPU pinning, the load average) and `config` (what was asked), then the harness's own figures.
A figure with nothing to measure (NaN: N=0 has no per-packet cost) is written as null.
`--json -` writes the JSON to stdout, after the table; a path gets a file.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import aiortc

from . import procstat
from .serverproc import REPO_ROOT


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def aiosfu_revision() -> str:
    """The commit measured, and whether the server's code differed from it."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "sfu", "signaling")
    return f"{commit} + uncommitted changes in sfu/ or signaling/" if dirty else commit


def environment(pinning: procstat.Pinning | None = None, **extra: Any) -> dict[str, Any]:
    """What the figures were measured on, and the pinning used (`extra`: e.g. Janus's version).

    `cpu_affinity` and `nproc` are what this process may use now: call it outside
    procstat.pinned_self.
    """
    affinity = sorted(os.sched_getaffinity(0))
    return {
        "aiosfu": aiosfu_revision(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "aiortc": aiortc.__version__,
        "cpus": os.cpu_count(),
        "nproc": len(affinity),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "cpu_affinity": affinity,
        "pinning": None if pinning is None else pinning.as_dict(),
        "pinning_text": procstat.describe_pinning(pinning),
        **extra,
    }


def environment_line(env: dict[str, Any]) -> str:
    """The last line of a table: what it was measured on."""
    return (
        f"aiosfu {env['aiosfu']}, python {env['python']}, aiortc {env['aiortc']}, "
        f"{env['cpus']} cpus ({env['cpu_model']}); {env['pinning_text']}"
    )


def json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: null, wherever they are."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def emit(
    table: str, payload: dict[str, Any], json_path: str | None, out: TextIO | None = None
) -> None:
    """The table for people on `out` (stdout); the JSON for tools at `json_path` (- : `out`)."""
    out = out or sys.stdout
    out.write(f"\n{table}\n")
    if json_path == "-":
        out.write(json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")
    elif json_path:
        with open(json_path, "w") as f:
            json.dump(json_safe(payload), f, indent=2, allow_nan=False)
            f.write("\n")
        out.write(f"\nJSON report: {json_path}\n")
    out.flush()


def ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def num(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
