"""Who may open /ws: OriginPolicy as a table, then the hub refusing a foreign page for real."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from signaling.config import HubConfig
from signaling.hub import Hub
from signaling.origin import OriginPolicy
from tests.signaling.served import served
from tests.signaling.test_hub import FakeBackend


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "ok"),
    [
        ((), None, "127.0.0.1:8080", True),  # not a browser
        ((), "http://127.0.0.1:8080", "127.0.0.1:8080", True),  # the server's own page
        ((), "http://LOCALHOST:8080/", "localhost:8080", True),
        ((), "https://sfu.example.com", "sfu.example.com", True),
        ((), "http://127.0.0.1:8081", "127.0.0.1:8080", False),  # another port is another origin
        ((), "https://evil.example", "127.0.0.1:8080", False),
        ((), "null", "127.0.0.1:8080", False),  # a sandboxed frame or a file: page
        (("https://app.example.com",), "https://app.example.com", "sfu.example.com", True),
        (("https://app.example.com",), "https://evil.example", "sfu.example.com", False),
        (("*",), "https://evil.example", "sfu.example.com", True),
    ],
)
def test_policy(allowed: tuple[str, ...], origin: str | None, host: str, ok: bool) -> None:
    assert OriginPolicy(allowed).allows(origin, host) is ok


@pytest.fixture
async def url() -> AsyncIterator[str]:
    hub = Hub(FakeBackend(), HubConfig(allowed_origins=("https://app.example.com",)))
    async with served(hub) as base:
        yield base


async def test_a_foreign_page_is_refused_and_the_others_connect(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{url}/ws", headers={"Origin": "https://evil.example"})
        assert refused.value.status == 403
        for headers in ({}, {"Origin": url}, {"Origin": "https://app.example.com"}):
            ws = await http.ws_connect(f"{url}/ws", headers=headers)
            await ws.send_json({"type": "ping", "id": 1})
            assert await ws.receive_json() == {"type": "pong", "id": 1}
            await ws.close()
