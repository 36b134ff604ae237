"""CPU time and memory of any process, from /proc (the same reading for every server measured),
and CPU pinning for the benchmarks.

Pinning (`plan_pinning`, `pin_process`, `pinned_self`): the server process and all its threads
on one CPU (the lowest this process may use), the benchmark process (its synthetic clients) on
the others. The server then has one core, literally, and the clients cannot steal it.
`sched_setaffinity` sets one thread: a thread that exists when it is called keeps its mask, a
thread created afterwards inherits its creator's. So a process is pinned thread by thread,
through /proc/<pid>/task.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass


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


class ProcessProbe:
    """CPU time and memory of a process by pid (a server this harness did not start)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)


# --- CPU pinning ---------------------------------------------------------------------------------


def format_cpus(cpus: Iterable[int]) -> str:
    """The CPUs of a set, in order: "0", "1,3"."""
    return ",".join(str(cpu) for cpu in sorted(cpus))


def parse_cpu_list(text: str) -> frozenset[int]:
    """A kernel CPU list ("0-2,5", as in Cpus_allowed_list) as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return frozenset(cpus)


@dataclass(frozen=True)
class Pinning:
    """The server on `server` (one CPU), the benchmark process on `bench` (the others)."""

    server: frozenset[int]
    bench: frozenset[int]

    def describe(self) -> str:
        return (
            f"CPU pinning on: server on CPU {format_cpus(self.server)}, "
            f"clients on CPU {format_cpus(self.bench)}"
        )

    def as_dict(self) -> dict[str, list[int]]:
        return {"server_cpus": sorted(self.server), "bench_cpus": sorted(self.bench)}


def describe_pinning(pinning: Pinning | None) -> str:
    if pinning is None:
        return f"CPU pinning off (CPUs {format_cpus(os.sched_getaffinity(0))} shared)"
    return pinning.describe()


def plan_pinning(pin: bool | None = None, available: Iterable[int] | None = None) -> Pinning | None:
    """Where to run, or None for no pinning.

    `pin`: True, False, or None for "when there are at least 2 CPUs". `available`: the CPUs to
    share out, by default those this process may use (its affinity: so call it outside
    `pinned_self`). The server gets the lowest of them, the benchmark the rest.
    """
    cpus = frozenset(os.sched_getaffinity(0) if available is None else available)
    if pin is False:
        return None
    if len(cpus) < 2:
        if pin:
            raise ValueError(
                f"pinning needs at least 2 CPUs; this process may use CPU {format_cpus(cpus)}"
            )
        return None
    server = min(cpus)
    return Pinning(frozenset({server}), cpus - {server})


def thread_ids(pid: int) -> list[int]:
    """The threads of a process (their ids, the first is usually `pid`); [] if it is gone."""
    try:
        return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return []


def thread_cpus(pid: int) -> dict[int, frozenset[int]]:
    """Each thread's allowed CPUs, read from /proc/<pid>/task/<tid>/status (Cpus_allowed_list)."""
    found: dict[int, frozenset[int]] = {}
    for tid in thread_ids(pid):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("Cpus_allowed_list:"):
                        found[tid] = parse_cpu_list(line.split(":", 1)[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
    return found


def pin_process(pid: int, cpus: AbstractSet[int]) -> int:
    """Pin a process and every thread it has now to `cpus`; returns the threads pinned.

    Threads it creates later inherit the mask of the (pinned) thread that creates them.
    Raises ProcessLookupError if the process itself is gone.
    """
    os.sched_setaffinity(pid, cpus)
    pinned = 0
    for tid in thread_ids(pid):
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        pinned += 1
    return pinned


def unpinned_threads(pid: int, cpus: AbstractSet[int]) -> dict[int, frozenset[int]]:
    """The threads of `pid` that may run elsewhere than `cpus`, with their CPUs."""
    return {tid: allowed for tid, allowed in thread_cpus(pid).items() if allowed != cpus}


@contextlib.contextmanager
def pinned_self(cpus: AbstractSet[int] | None) -> Iterator[None]:
    """This process, all its threads, on `cpus` (None: leave it alone); restored on exit.

    On exit each thread gets back its own mask; a thread created meanwhile gets the mask the
    calling thread had.
    """
    if cpus is None:
        yield
        return
    pid = os.getpid()
    saved: dict[int, set[int]] = {}
    for tid in thread_ids(pid):
        with contextlib.suppress(ProcessLookupError):
            saved[tid] = os.sched_getaffinity(tid)
    default = saved.get(threading.get_native_id()) or os.sched_getaffinity(0)
    try:
        pin_process(pid, cpus)
        yield
    finally:
        for tid in thread_ids(pid):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(tid, saved.get(tid, default))
