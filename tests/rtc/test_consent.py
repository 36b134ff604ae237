"""sfu.rtc.consent: a connection closed in the tick its checks complete leaves no consent task."""

from __future__ import annotations

import asyncio

from aioice import Connection

from sfu.rtc import consent


async def test_no_consent_task_for_a_closed_connection() -> None:
    consent.install()
    assert consent.installed()
    conn = Connection(ice_controlling=True)
    await conn.close()
    # What connect() does when it resumes after close(): the task must end by itself.
    task = asyncio.create_task(conn.query_consent())
    await asyncio.wait_for(task, 1)
    assert task.done() and task.exception() is None
