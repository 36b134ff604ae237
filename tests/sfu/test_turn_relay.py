"""ICE_MODE=turn-only against a real coturn (use-auth-secret): media flows relay to relay, a
refused or unreachable TURN server ends a client failed with a reason naming TURN (never an
endless `new`), and fresh credentials arrive before the old ones expire and are accepted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aioice
import pytest
from aiortc import RTCIceServer

from sfu.client import Client, ConnectionFailed
from sfu.media import TestPatternTrack
from sfu.rtc import probe
from sfu.rtc.candidates import selected_pair_types
from sfu.rtc.iceservers import ice_servers
from sfu.server import RunningServer, ServerConfig
from signaling.backend import IceServer
from signaling.ice import IceConfig
from signaling.turn import rest_credential
from tests.conftest import LOOPBACK
from tests.turnserver import SECRET, Coturn, verifies
from tests.util import eventually, recv

StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def turn_server(coturn: Coturn) -> AsyncIterator[StartServer]:
    """An aiosfu server in turn-only mode whose TURN REST secret is coturn's."""
    servers: list[RunningServer] = []

    async def start(ttl: float = 3600, secret: str = SECRET) -> RunningServer:
        ice = IceConfig(mode="turn-only", turn_urls=(coturn.url,), turn_secret=secret, turn_ttl=ttl)
        server = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK, ice=ice)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            await client.close()


def client(made: list[Client], server: RunningServer, name: str, **kwargs: object) -> Client:
    made.append(Client(server.url, "relay", name=name, ice_addresses=LOOPBACK, **kwargs))  # type: ignore[arg-type]
    return made[-1]


async def test_relay_only_call(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    server = await turn_server()
    # bob overrides the ICE servers with none, as load peers do (no STUN whatever the welcome
    # says): in turn-only mode he still gets the welcome's TURN server, as relay-only needs one.
    alice, bob = client(clients, server, "alice"), client(clients, server, "bob", ice_servers=[])
    welcome = await alice.connect()
    await bob.connect()
    assert welcome.ice_mode == "turn-only"
    [turn] = welcome.ice_servers
    assert turn.urls == [coturn.url] and turn.username.endswith(f":{alice.peer_id}")  # type: ignore[union-attr]
    assert verifies(turn.username, turn.credential)

    await alice.publish(TestPatternTrack(320, 240, fps=15))
    remote = await bob.next_track(timeout=15)
    frame = await recv(remote.track, 15)
    assert (frame.width, frame.height) == (320, 240)

    for peer in (alice, bob):
        assert peer.pc is not None
        assert selected_pair_types(peer.pc) == ("relay", "relay"), peer.name
        assert "typ host" not in peer.pc.localDescription.sdp
    for participant in server.backend.participants():
        assert selected_pair_types(participant.pc) == ("relay", "relay")
    # Every peer connection, the clients' and the server's own, made its allocation.
    users = {u.split(":", 1)[1] for u in coturn.allocations()}
    assert {alice.peer_id, bob.peer_id, f"sfu-{alice.peer_id}", f"sfu-{bob.peer_id}"} <= users


async def test_an_expired_credential_fails_naming_turn(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    server = await turn_server()
    expired = rest_credential(SECRET, "late", int(time.time()) - 60)
    late = client(
        clients,
        server,
        "late",
        ice_servers=[IceServer([coturn.url], expired.username, expired.credential)],
    )
    await late.connect()
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="TURN"):
        await late.publish(TestPatternTrack(320, 240, fps=15))
    await asyncio.wait_for(late.disconnected.wait(), 10)
    assert time.monotonic() - started < 10
    assert late.disconnect_reason is not None
    assert (
        "TURN relay unavailable" in late.disconnect_reason
        and "401 Unauthorized" in late.disconnect_reason
    )
    assert coturn.refusals() >= 1
    # It left the room: nobody waits for its media.
    await eventually(lambda: "" if not server.backend.participants() else "still in the room")


async def test_an_unreachable_turn_server_fails_within_10_s(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    server = await turn_server()
    watcher = client(clients, server, "watcher")
    await watcher.connect()
    coturn.pause()  # no answer to anything, as a firewall that drops the TURN port
    try:
        started = time.monotonic()
        publisher = client(clients, server, "publisher")
        await publisher.connect()
        with pytest.raises(ConnectionFailed, match="TURN"):
            await publisher.publish(TestPatternTrack(320, 240, fps=15))
        assert time.monotonic() - started < 10
        assert (
            publisher.disconnect_reason is not None and "no answer" in publisher.disconnect_reason
        )
    finally:
        coturn.resume()


async def test_the_servers_own_allocation_failing_is_reported(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    # A TURN_SECRET that is not coturn's: the server's own allocation is refused too.
    server = await turn_server(secret="not-coturns")
    good = rest_credential(SECRET, "ok", int(time.time()) + 600)
    bob = client(
        clients,
        server,
        "bob",
        ice_servers=[IceServer([coturn.url], good.username, good.credential)],
        reconnect_attempts=1,  # a fresh join meets the same refusal: give up after one
    )
    await bob.connect()
    with pytest.raises(Exception, match="TURN"):
        await bob.publish(TestPatternTrack(320, 240, fps=15))
    await asyncio.wait_for(bob.disconnected.wait(), 10)
    assert (
        bob.disconnect_reason is not None
        and "server's TURN relay is unavailable" in bob.disconnect_reason
    )


async def test_fresh_credentials_arrive_before_expiry_and_coturn_takes_them(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    server = await turn_server(ttl=4)
    alice = client(clients, server, "alice")
    welcome = await alice.connect()
    first = welcome.ice_servers[0]
    assert first.username is not None
    expires = int(first.username.split(":")[0])
    await alice.publish(TestPatternTrack(320, 240, fps=15))  # an ICE transport, allocated

    def held() -> RTCIceServer:
        assert alice.pc is not None
        [server] = ice_servers(alice.pc).iceServers or []
        return server

    def refreshed() -> str:
        return "" if held().username != first.username else "still the welcome's credentials"

    await eventually(refreshed, timeout=10)
    assert time.time() < expires  # before the welcome's expired (at 3/4 of 4 s)
    fresh = held()
    assert verifies(fresh.username, fresh.credential)
    assert int(str(fresh.username).split(":")[0]) > expires
    # The client's ICE connection holds them too: an in-place restart builds from it.
    assert alice.pc is not None
    [connection] = probe.ice_connections(alice.pc)
    assert connection.turn_username == fresh.username

    # Once the welcome's have expired, coturn refuses them and takes the fresh ones.
    await asyncio.sleep(max(0.0, expires + 1.1 - time.time()))  # coturn counts whole seconds
    assert await allocates(coturn, first.username, first.credential) is False
    assert await allocates(coturn, fresh.username, fresh.credential) is True


async def allocates(coturn: Coturn, username: str | None, credential: str | None) -> bool:
    connection = aioice.Connection(
        ice_controlling=True,
        use_ipv6=False,
        turn_server=("127.0.0.1", coturn.port),
        turn_username=username,
        turn_password=credential,
        transport_policy=aioice.TransportPolicy.RELAY,
    )
    try:
        await connection.gather_candidates()
        return any(c.type == "relay" for c in connection.local_candidates)
    finally:
        await connection.close()


async def test_an_ice_restart_after_the_credentials_expired_allocates_afresh(
    turn_server: StartServer, coturn: Coturn, clients: list[Client]
) -> None:
    # TURN_TTL 4 s: past it, the credentials the connections were made with are refused. An ICE
    # restart then makes new allocations, the server's own included: with fresh credentials.
    server = await turn_server(ttl=4)
    alice, bob = client(clients, server, "alice"), client(clients, server, "bob")
    welcome = await alice.connect()
    await bob.connect()
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    remote = await bob.next_track(timeout=15)
    await recv(remote.track, 15)
    [participant] = [p for p in server.backend.participants() if p.id == alice.peer_id]
    [before] = probe.ice_connections(participant.pc)
    expires = int(str(welcome.ice_servers[0].username).split(":")[0])
    await asyncio.sleep(max(0.0, expires + 1.1 - time.time()))  # coturn counts whole seconds
    assert await allocates(coturn, before.turn_username, before.turn_password) is False

    assert await alice.restart_ice()
    assert alice.pc is not None
    for pc in (alice.pc, participant.pc):
        assert selected_pair_types(pc) == ("relay", "relay")
    [mine] = probe.ice_connections(alice.pc)  # the refresh's (ice_servers), not the welcome's
    assert mine.turn_username != welcome.ice_servers[0].username
    [after] = probe.ice_connections(participant.pc)
    assert after is not before and verifies(after.turn_username, after.turn_password)
    assert int(str(after.turn_username).split(":")[0]) > expires
    # Video goes on reaching bob over the new relays.
    for _ in range(10):
        frame = await recv(remote.track, 5)
    assert (frame.width, frame.height) == (320, 240)
