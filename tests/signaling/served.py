"""A hub served on 127.0.0.1 (a free port) for tests that talk to it over real sockets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from signaling.hub import Hub, create_app


@contextlib.asynccontextmanager
async def served(hub: Hub) -> AsyncIterator[str]:
    """Yields the hub's base URL, http://127.0.0.1:PORT."""
    runner = web.AppRunner(create_app(hub))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
