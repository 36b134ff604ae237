"""Fixtures: an in-process aiosfu server on 127.0.0.1 and real aiortc clients.

ICE gathers on 127.0.0.1 only (tests may run in a network namespace with nothing but loopback,
and must never send anywhere else).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiortc.codecs import vpx

from sfu.client import Client
from sfu.server import RunningServer, ServerConfig
from tests.turnserver import Coturn, coturn_for_tests

LOOPBACK = ["127.0.0.1"]

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture(autouse=True)
def pinned_vp8_bitrate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin aiortc's VP8 encoder (used by test publishers) to a fixed bitrate.

    It restarts, and so emits a keyframe, whenever REMB moves its target by more than 10 %: that
    would hide a broken keyframe-request path and waste CPU. Keyframes then come only on request.
    """
    fixed = property(lambda self: 800_000, lambda self, value: None)
    monkeypatch.setattr(vpx.Vp8Encoder, "target_bitrate", fixed)


@contextlib.asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[RunningServer]:
    """A server on 127.0.0.1 (a free port, ICE on loopback) with these ServerConfig settings."""
    config = ServerConfig(port=0, ice_addresses=LOOPBACK, **settings)
    running = await RunningServer(config).start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    marker = request.node.get_closest_marker("server_config")
    async with serving(**(marker.kwargs if marker is not None else {})) as running:
        yield running


@pytest.fixture
async def coturn() -> AsyncIterator[Coturn]:
    """A real coturn on 127.0.0.1 with use-auth-secret (tests/turnserver.py)."""
    async with coturn_for_tests() as running:
        yield running


@pytest.fixture
async def make_client(server: RunningServer) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(room: str = "room", *, connect: bool = True, **kwargs: object) -> Client:
        kwargs.setdefault("ice_addresses", LOOPBACK)
        client = Client(server.url, room, **kwargs)  # type: ignore[arg-type]
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield make
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
