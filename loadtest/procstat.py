"""CPU time and memory of any process, from /proc (the same reading for every server measured),
and what the machine was."""

from __future__ import annotations

import os
import platform
from typing import Any

import aiortc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all its threads included, so far."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"no VmRSS for pid {pid} (a zombie?)")


def thread_count(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Threads for pid {pid}")


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine, all cores, since boot.

    Busy includes steal: time the hypervisor gave to another guest while we wanted to run, the
    noise a shared VM adds to every figure.
    """
    with open("/proc/stat") as f:
        fields = f.readline().split()  # "cpu user nice system idle iowait irq softirq steal ..."
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, steal / tick


def environment() -> dict[str, Any]:
    """What a figure was measured on: Python, CPUs, aiortc, the platform."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "aiortc": aiortc.__version__,
        "platform": platform.platform(),
    }
