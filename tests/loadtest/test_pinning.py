"""CPU pinning of the benchmarks: a real child process pinned thread by thread, this process's
affinity restored, and the plan (server on the lowest CPU, the benchmark on the others)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

import pytest

from loadtest import procstat
from loadtest.procstat import Pinning, parse_cpu_list, plan_pinning
from loadtest.serverproc import ServerProcess

AFFINITY = frozenset(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(AFFINITY) < 2, reason="pinning needs 2 CPUs or more")

# A child with 3 threads besides its main one, all started before it says "ready".
THREADED_CHILD = """
import sys, threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
print("ready", flush=True)
time.sleep(30)
"""

# A stand-in for `aiosfu serve`: starts a thread at once, then answers /healthz on --port.
FAKE_SERVER = """
import http.server, sys, threading, time
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
port = int(sys.argv[sys.argv.index("--port") + 1])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Health).serve_forever()
"""


def status_cpus(pid: int) -> dict[int, frozenset[int]]:
    """Cpus_allowed_list of every thread, straight from /proc (not through the helper)."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            line = next(line for line in f if line.startswith("Cpus_allowed_list:"))
        found[int(tid)] = parse_cpu_list(line.split(":", 1)[1])
    return found


def test_the_plan_gives_the_lowest_cpu_to_the_server_and_the_rest_to_the_bench() -> None:
    assert plan_pinning(None, {3, 1, 2}) == Pinning(frozenset({1}), frozenset({2, 3}))
    assert plan_pinning(True, {0, 1}) == Pinning(frozenset({0}), frozenset({1}))
    assert plan_pinning(False, {0, 1}) is None
    assert plan_pinning(None, {5}) is None, "one CPU: nothing to share out"
    with pytest.raises(ValueError, match="at least 2 CPUs"):
        plan_pinning(True, {5})
    assert parse_cpu_list("0-2,5\n") == {0, 1, 2, 5} and parse_cpu_list("1") == {1}


@needs_two_cpus
def test_a_child_and_every_thread_it_already_has_are_pinned() -> None:
    server_cpu = min(AFFINITY)
    child = subprocess.Popen(
        [sys.executable, "-c", THREADED_CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        assert len(status_cpus(child.pid)) == 4
        assert procstat.pin_process(child.pid, {server_cpu}) == 4
        threads = status_cpus(child.pid)
        assert len(threads) == 4 and set(threads.values()) == {frozenset({server_cpu})}, threads
        assert procstat.unpinned_threads(child.pid, {server_cpu}) == {}
    finally:
        child.kill()
        child.wait()


@needs_two_cpus
async def test_server_process_pins_its_child_at_spawn() -> None:
    pinning = plan_pinning(True)
    assert pinning is not None
    fake = [sys.executable, "-c", FAKE_SERVER]
    async with ServerProcess(argv_prefix=fake, cpus=pinning.server) as server:
        threads = status_cpus(server.pid)
        assert len(threads) >= 2, "its early thread, its main thread"
        assert set(threads.values()) == {pinning.server}, threads
    assert os.sched_getaffinity(0) == AFFINITY, "the parent is left alone"


@needs_two_cpus
def test_the_bench_process_is_pinned_then_restored() -> None:
    pinning = plan_pinning(True)
    assert pinning is not None
    stop = threading.Event()
    before = threading.Thread(target=stop.wait, daemon=True)
    before.start()
    during: threading.Thread | None = None
    try:
        with procstat.pinned_self(pinning.bench):
            assert os.sched_getaffinity(0) == pinning.bench
            assert set(status_cpus(os.getpid()).values()) == {pinning.bench}, "every thread"
            during = threading.Thread(target=stop.wait, daemon=True)
            during.start()  # inherits the pinned mask
            assert before.native_id is not None and during.native_id is not None
            assert os.sched_getaffinity(during.native_id) == pinning.bench
        threads = status_cpus(os.getpid())
        assert threads[threading.get_native_id()] == AFFINITY
        assert threads[before.native_id] == AFFINITY
        assert threads[during.native_id] == AFFINITY, "a thread made meanwhile: unpinned too"
    finally:
        stop.set()
        before.join()
        if during is not None:
            during.join()


@needs_two_cpus
def test_the_bench_affinity_is_restored_when_the_run_fails() -> None:
    pinning = plan_pinning(True)
    assert pinning is not None

    async def failing_run() -> None:
        with procstat.pinned_self(pinning.bench):
            await asyncio.sleep(0)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(failing_run())
    assert os.sched_getaffinity(0) == AFFINITY
