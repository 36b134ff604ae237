"""Which Host names /ws answers to: HostPolicy as a table, then a DNS-rebound page refused for
real (its Origin and Host both name the attacker's host, which passes the Origin check)."""

from __future__ import annotations

import aiohttp
import pytest

from signaling.config import HubConfig
from signaling.hosts import LOOPBACK_HOSTS, HostPolicy, split_host
from signaling.hub import Hub
from tests.signaling.served import served
from tests.signaling.test_hub import FakeBackend


@pytest.mark.parametrize(
    ("host", "parts"),
    [
        ("sfu.example.com", ("sfu.example.com", None)),
        ("SFU.example.com.:8443", ("sfu.example.com", "8443")),
        ("127.0.0.1:8080", ("127.0.0.1", "8080")),
        ("[::1]:8080", ("::1", "8080")),
        ("[::1]", ("::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_split_host(host: str, parts: tuple[str, str | None]) -> None:
    assert split_host(host) == parts


@pytest.mark.parametrize(
    ("allowed", "host", "ok"),
    [
        ((), "evil.example:8080", True),  # not configured: any
        (LOOPBACK_HOSTS, "127.0.0.1:8080", True),
        (LOOPBACK_HOSTS, "localhost:1234", True),
        (LOOPBACK_HOSTS, "[::1]:8080", True),
        (LOOPBACK_HOSTS, "evil.example:8080", False),
        (("sfu.example.com",), "sfu.example.com", True),
        (("sfu.example.com",), "sfu.example.com:443", True),
        (("sfu.example.com:8443",), "sfu.example.com:443", False),
        (("sfu.example.com:8443",), "sfu.example.com:8443", True),
        (("sfu.example.com",), "", False),
        (("sfu.example.com",), None, False),
    ],
)
def test_policy(allowed: tuple[str, ...], host: str | None, ok: bool) -> None:
    assert HostPolicy(allowed).allows(host) is ok


async def test_a_dns_rebound_page_is_refused() -> None:
    hub = Hub(FakeBackend(), HubConfig(allowed_hosts=LOOPBACK_HOSTS))
    async with served(hub) as base, aiohttp.ClientSession() as http:
        port = base.rsplit(":", 1)[1]
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{base}/ws", headers=rebound)
        assert refused.value.status == 403
        async with http.get(f"{base}/ws", headers=rebound) as response:  # the reason, in words
            assert "ALLOWED_HOSTS" in await response.text()
        ws = await http.ws_connect(f"{base}/ws", headers={"Origin": base})
        await ws.send_json({"type": "ping", "id": 1})
        assert await ws.receive_json() == {"type": "pong", "id": 1}
        await ws.close()
    assert hub.stats.refusals["host"] == 2
