"""loadtest.serverproc: start, measure and stop the server process; clear start-up errors."""

from __future__ import annotations

import os
import sys

import aiohttp
import pytest

from loadtest.serverproc import ServerProcess, ServerStartError


async def test_serves_health_and_reports_its_own_cpu_and_memory() -> None:
    async with ServerProcess() as server:
        assert server.url == f"ws://127.0.0.1:{server.port}/ws"
        async with aiohttp.ClientSession() as session, session.get(server.health_url) as r:
            assert r.status == 200
        assert server.pid != os.getpid()
        assert server.cpu_seconds() > 0  # it imported aiortc and started: it used some CPU
        assert server.rss_bytes() > 10 * 2**20
    assert server.returncode is not None, "stopped on leaving the context"
    assert "serving on http://127.0.0.1" in server.output()


async def test_a_server_that_dies_at_start_is_reported_with_its_output() -> None:
    dying = [sys.executable, "-c", "import sys; print('no luck here', file=sys.stderr); exit(3)"]
    with pytest.raises(ServerStartError, match=r"(?s)exited with status 3.*no luck here"):
        await ServerProcess(argv_prefix=dying).start()


async def test_a_server_that_never_answers_times_out_and_is_killed() -> None:
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    server = ServerProcess(argv_prefix=silent, startup_timeout=0.5)
    with pytest.raises(ServerStartError, match="did not answer"):
        await server.start()
    assert server.returncode is not None, "the process was stopped"


async def test_extra_environment_reaches_the_process() -> None:
    probe = [
        sys.executable,
        "-c",
        "import os, sys; print('X=' + os.environ['AIOSFU_PROBE'], file=sys.stderr); exit(1)",
    ]
    with pytest.raises(ServerStartError, match="X=42"):
        await ServerProcess(argv_prefix=probe, env={"AIOSFU_PROBE": "42"}).start()
