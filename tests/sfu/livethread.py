"""A server on an event loop of its own thread, for tests driven by synchronous code (hypothesis).

    with LiveServer(limits=Limits(...)) as live:
        live.run(some_coroutine(live.server))     # runs on the server's loop, returns its result

Everything that touches the server or aiortc runs on that loop; the test thread only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from sfu.server import RunningServer, ServerConfig
from tests.conftest import LOOPBACK

T = TypeVar("T")


class Startable(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


class LiveServer:
    def __init__(self, **settings: Any) -> None:
        self.config = ServerConfig(port=0, ice_addresses=LOOPBACK, **settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="live", daemon=True)
        self.server: RunningServer | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @contextlib.contextmanager
    def started(self, thing: S) -> Iterator[S]:
        """Something with async start() and stop(), started and stopped on the server's loop."""
        self.run(thing.start())
        try:
            yield thing
        finally:
            self.run(thing.stop())

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self.server = self.run(RunningServer(self.config).start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.server is not None:
            self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
