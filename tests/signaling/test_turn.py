"""TURN REST credentials: minted as coturn's use-auth-secret checks them, and sent again to
every client before they expire (a real coturn checks them in tests/sfu/test_turn_relay.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from signaling import protocol as p
from signaling.config import HubConfig
from signaling.hub import Hub, create_app
from signaling.ice import IceConfig
from signaling.turn import TurnRest, rest_credential
from tests.signaling.test_hub import Client, FakeBackend
from tests.turnserver import SECRET, verifies


def test_known_credential() -> None:
    # printf 1600000000:alice | openssl dgst -sha1 -hmac north -binary | base64
    minted = rest_credential("north", "alice", 1_600_000_000)
    assert minted.username == "1600000000:alice"
    assert minted.credential == "gq98pTOhhHaAu0we9aV79kOVVv0="
    assert verifies(*TurnRest(SECRET, ttl=60).mint("bob", 1_000.0)[:2])


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        TurnRest("", ttl=60)
    with pytest.raises(ValueError):
        TurnRest(SECRET, ttl=0)
    assert SECRET not in repr(TurnRest(SECRET))


@pytest.fixture
async def short_ttl_hub() -> AsyncIterator[str]:
    ice = IceConfig(turn_urls=("turn:127.0.0.1:3478",), turn_secret=SECRET, turn_ttl=2.0)
    runner = web.AppRunner(create_app(Hub(FakeBackend(), HubConfig(ice=ice))))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/ws"
    await runner.cleanup()


async def test_fresh_credentials_arrive_before_expiry(short_ttl_hub: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = Client("alice", await http.ws_connect(short_ttl_hub))
        welcome = await client.join()
        [first] = welcome.ice_servers
        assert first.username is not None and first.credential is not None
        assert verifies(first.username, first.credential)
        expiry, user = first.username.split(":")
        assert user == welcome.peer_id and int(expiry) <= time.time() + 2

        fresh: list[p.IceServers] = []
        for _ in range(2):  # at 3/4 of the 2 s lifetime, then again
            fresh.append(await client.next(p.IceServers))
            [server] = fresh[-1].ice_servers
            assert server.urls == ["turn:127.0.0.1:3478"]
            assert server.username is not None and server.credential is not None
            assert verifies(server.username, server.credential)
            # What the client held is still valid when the new one arrives.
            previous = (fresh[-2].ice_servers[0] if len(fresh) > 1 else first).username
            assert previous is not None and int(previous.split(":")[0]) + 1 >= time.time()
            assert server.username.endswith(f":{welcome.peer_id}")
            assert int(server.username.split(":")[0]) > int(previous.split(":")[0])

        await client.send(p.Leave())
        await client.sync()
        # After leave, no more credentials: the next message is the pong of a later ping.
        await client.sync()
        await client.close()
