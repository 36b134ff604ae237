"""Data channels between Python clients through the server: reliable messages to the room and to
one peer, exactly once and in order, with their sender; lossy ones; what is refused (too large,
a flood, no grant, malformed) reaches nobody, and is said to the sender alone; and the channels
across the client's recovery (a resume keeps them, a fresh rejoin opens new ones)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sfu.client import Client, ClientState, DataMessage
from sfu.media import TestPatternTrack
from sfu.server import RunningServer, ServerConfig
from signaling.auth import mint
from signaling.backend import Grants
from signaling.limits import Limits
from tests.conftest import LOOPBACK, serving
from tests.sfu.test_metrics import scrape, value
from tests.sfu.test_rebuild import close_server_side as close_ice_on_the_server
from tests.sfu.test_reconnect import FAST, close_server_side
from tests.util import eventually, eventually_async, recv

RELIABLE = {"channel": "reliable"}
SECRET = "a-test-secret-that-is-long-enough-for-hs256"


async def connected(server: RunningServer, room: str, *names: str, **kwargs: Any) -> list[Client]:
    """Clients with data channels, once the server holds each one's channels (a message sent
    before a receiver's channel reached the server reaches nobody), each heard by the others."""
    clients = []
    for name in names:
        client = Client(server.url, room, name=name, ice_addresses=LOOPBACK, data=True, **kwargs)
        await client.connect()
        clients.append(client)

    def all_open() -> str:
        found = {
            p.id: sorted(k for k, c in p.data.channels.items() if c.readyState == "open")
            for p in server.backend.participants()
        }
        ready = [c for c in clients if found.get(c.peer_id or "") == ["lossy", "reliable"]]
        return "" if len(ready) == len(clients) else f"channels open on the server: {found}"

    await eventually(all_open, timeout=10)
    for client in clients:
        await client.send_data({"hello": client.name})
    for client in clients:
        heard = {(await client.next_data()).payload["hello"] for _ in clients[1:]}
        assert heard == {c.name for c in clients if c is not client}
    return clients


async def drain_until(client: Client, marker: str, timeout: float = 10.0) -> list[DataMessage]:
    """Every message `client` gets until (and without) the one whose payload is `marker`."""
    got = []
    while (msg := await client.next_data(timeout)).payload != marker:
        got.append(msg)
    return got


@pytest.fixture
async def trio(server: RunningServer) -> AsyncIterator[list[Client]]:
    clients = await connected(server, "data", "alice", "bob", "carol")
    yield clients
    for client in clients:
        await client.close()


async def test_reliable_messages_reach_the_room_and_one_peer_once_in_order(
    trio: list[Client],
) -> None:
    alice, bob, carol = trio
    for n in range(50):
        await alice.send_data({"n": n})
    await alice.send_data("end")
    for receiver in (bob, carol):
        got = await drain_until(receiver, "end")
        assert [m.payload["n"] for m in got] == list(range(50))
        assert {(m.sender, m.reliable, m.to) for m in got} == {(alice.peer_id, True, None)}

    assert bob.peer_id is not None
    for n in range(20):
        await alice.send_data({"private": n}, to=[bob.peer_id])
    await alice.send_data("end")
    got = await drain_until(bob, "end")
    assert [m.payload["private"] for m in got] == list(range(20))
    assert {(m.sender, tuple(m.to or ())) for m in got} == {(alice.peer_id, (bob.peer_id,))}
    assert await drain_until(carol, "end") == []  # not one of them reached carol
    assert alice._data_queue.empty() and not alice.errors  # nothing comes back to the sender


async def test_lossy_messages_arrive_with_their_sender(trio: list[Client]) -> None:
    alice, bob, _ = trio
    for n in range(20):
        await alice.send_data({"n": n}, reliable=False)
    got: list[DataMessage] = []
    while len(got) < 20:  # loopback loses nothing; a lost one would fail on the timeout
        got.append(await bob.next_data())
    assert sorted(m.payload["n"] for m in got) == list(range(20))
    assert {(m.sender, m.reliable) for m in got} == {(alice.peer_id, False)}


async def test_an_oversized_message_reaches_nobody_and_its_sender_is_told(
    server: RunningServer, trio: list[Client]
) -> None:
    alice, bob, carol = trio
    await alice.send_data("x" * (Limits().data_message_bytes + 1))
    await alice.send_data("after")
    for receiver in (bob, carol):
        assert await drain_until(receiver, "after") == []
    await eventually(lambda: "" if alice.errors else "no error yet")
    assert [e.code for e in alice.errors] == ["data_too_large"]
    assert not bob.errors and not carol.errors
    samples = await scrape(server)
    assert value(samples, "aiosfu_limit_refusals_total", limit="data_size") == 1
    assert value(samples, "aiosfu_data_messages_refused_total", channel="reliable") == 1


async def test_a_flood_is_cut_short_and_touches_nobody_else() -> None:
    limits = Limits(data_rate=10, data_burst=10)
    async with serving(limits=limits) as server:
        alice, bob, carol = await connected(server, "flood", "alice", "bob", "carol")
        try:
            started = time.monotonic()
            for n in range(200):
                await alice.send_data({"flood": n})
            for n in range(5):  # carol goes on meanwhile, within her own rate
                await carol.send_data({"carol": n}, to=[bob.peer_id or ""])

            async def all_received() -> str:  # the three hellos, the flood and carol's
                got = value(await scrape(server), "aiosfu_data_messages_received_total", **RELIABLE)
                return "" if got >= 3 + 200 + 5 else f"{got} messages reached the server"

            await eventually_async(all_received, timeout=20)
            lasted = time.monotonic() - started  # the server's flood lasted no longer
            await eventually(lambda: "" if alice.errors else "alice not told", timeout=10)
            assert [e.code for e in alice.errors] == ["data_rate_limited"]  # once per flood
            got: list[DataMessage] = []
            while len([m for m in got if m.sender == carol.peer_id]) < 5:
                got.append(await bob.next_data())
            flood = [m.payload["flood"] for m in got if m.sender == alice.peer_id]
            # The burst, then what the rate let through while the flood came in (however slowly
            # a loaded machine took it in).
            assert flood[:9] == list(range(9)), flood
            assert 9 <= len(flood) <= limits.data_burst + limits.data_rate * lasted + 1, flood
            assert not bob.errors and not carol.errors
            samples = await scrape(server)
            assert value(samples, "aiosfu_limit_refusals_total", limit="data_messages") == 1
            await asyncio.sleep(1.2)  # calm: the flood is over, and the bucket full again
            await alice.send_data("back")
            await drain_until(bob, "back")  # relayed again
            assert len(alice.errors) == 1
        finally:
            for client in (alice, bob, carol):
                await client.close()


async def test_without_the_data_grant_nothing_is_relayed_but_it_still_receives() -> None:
    async with serving(auth_secret=SECRET) as server:

        def token(identity: str, data: bool = True) -> str:
            return mint(SECRET, room="grant", identity=identity, grants=Grants(data=data))

        alice = Client(
            server.url, "grant", token=token("alice", data=False), ice_addresses=LOOPBACK, data=True
        )
        bob = Client(server.url, "grant", token=token("bob"), ice_addresses=LOOPBACK, data=True)
        try:
            welcome = await alice.connect()
            assert welcome.grants is not None and welcome.grants.data is False
            await bob.connect()
            await bob.send_data("from bob")
            assert (await alice.next_data()).payload == "from bob"
            for _ in range(5):
                await alice.send_data("from alice")
            await eventually(lambda: "" if alice.errors else "alice not told")
            await asyncio.sleep(0.3)
            assert [e.code for e in alice.errors] == ["data_not_allowed"]  # once a second
            assert bob._data_queue.empty()
        finally:
            await alice.close()
            await bob.close()


async def test_a_malformed_message_is_refused(trio: list[Client]) -> None:
    alice, bob, _ = trio
    alice._channels["reliable"].send("not json")
    alice._channels["reliable"].send('{"to": ["x"]}')  # no payload
    await alice.send_data("after")
    assert await drain_until(bob, "after") == []
    await eventually(lambda: "" if len(alice.errors) == 2 else f"{alice.errors}")
    assert [e.code for e in alice.errors] == ["bad_data", "bad_data"]


async def test_send_data_needs_data_channels(server: RunningServer) -> None:
    client = Client(server.url, "none", ice_addresses=LOOPBACK)
    await client.connect()
    try:
        with pytest.raises(RuntimeError, match="data=True"):
            await client.send_data("x")
    finally:
        await client.close()


async def test_data_channels_and_media_negotiate_either_way_round(server: RunningServer) -> None:
    # alice opens her data channels alone (the m=application line comes first), then publishes;
    # carol joins a room where alice publishes: her data offer crosses the server's offer of
    # alice's video (glare: she rolls back, answers, offers her data channels again).
    alice, bob = await connected(server, "both", "alice", "bob")
    carol = Client(server.url, "both", name="carol", ice_addresses=LOOPBACK, data=True)
    try:
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        assert (await recv((await bob.next_track()).track)).width == 160
        await carol.connect()
        assert (await recv((await carol.next_track()).track)).width == 160
        await carol.send_data("carol here")
        assert (await alice.next_data()).payload == "carol here"
        await alice.send_data("hi carol", to=[carol.peer_id or ""])
        assert (await carol.next_data()).payload == "hi carol"
        assert not (alice.errors or bob.errors or carol.errors)
    finally:
        for client in (alice, bob, carol):
            await client.close()


async def test_data_goes_on_across_a_resume(server: RunningServer) -> None:
    alice, bob = await connected(server, "resume-data", "alice", "bob", backoff=FAST)
    try:
        peer_id, pc = alice.peer_id, alice.pc
        await close_server_side(server, alice)
        await alice.wait_state(ClientState.RECONNECTING, timeout=10)
        await alice.wait_state(ClientState.CONNECTED, timeout=20)
        assert (alice.peer_id, alice.pc) == (peer_id, pc)  # the same session, the same channels
        await alice.send_data("after the resume")
        await bob.send_data("welcome back", to=[peer_id or ""])
        assert ((await bob.next_data()).sender, (await alice.next_data()).sender) == (
            peer_id,
            bob.peer_id,
        )
        assert not alice.errors and not bob.errors
    finally:
        for client in (alice, bob):
            await client.close()


async def test_a_fresh_rejoin_opens_new_data_channels() -> None:
    first = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK)).start()
    second: RunningServer | None = None
    alice, bob = await connected(first, "rejoin-data", "alice", "bob", backoff=FAST)
    try:
        old = alice.peer_id
        await first.stop()
        await alice.wait_state(ClientState.RECONNECTING, timeout=10)
        config = ServerConfig(port=first.port, ice_addresses=LOOPBACK)
        second = await RunningServer(config).start()
        server = second

        def both_open() -> str:
            found = {
                p.id: sorted(k for k, c in p.data.channels.items() if c.readyState == "open")
                for p in server.backend.participants()
            }
            ready = [c for c in (alice, bob) if found.get(c.peer_id or "") == ["lossy", "reliable"]]
            return "" if len(ready) == 2 else f"channels open on the new server: {found}"

        await eventually(both_open, timeout=30)
        assert alice.peer_id != old and alice.rejoins == 1
        await alice.send_data("after the restart")
        msg = await bob.next_data(20)
        assert (msg.sender, msg.payload) == (alice.peer_id, "after the restart")
    finally:
        for client in (alice, bob):
            await client.close()
        if second is not None:
            await second.stop()


async def test_a_rebuilt_connection_opens_new_data_channels(server: RunningServer) -> None:
    # The server replaces alice's peer connection in the same session (its side of ICE gone):
    # her client opens new channels on the new connection, and they relay again.
    alice, bob = await connected(server, "rebuild-data", "alice", "bob", backoff=FAST)
    try:
        peer_id, pc = alice.peer_id, alice.pc
        await close_ice_on_the_server(server, peer_id)
        await alice.wait_state(ClientState.RECONNECTING, timeout=10)
        await alice.wait_state(ClientState.CONNECTED, timeout=20)
        assert alice.peer_id == peer_id and alice.pc is not pc and alice.rebuilds == 1
        (on_server,) = [p for p in server.backend.participants() if p.id == peer_id]

        def open_again() -> str:
            kinds = sorted(k for k, c in on_server.data.channels.items() if c.readyState == "open")
            return "" if kinds == ["lossy", "reliable"] else f"open on the server: {kinds}"

        await eventually(open_again, timeout=20)
        await alice.send_data("after the rebuild")
        msg = await bob.next_data(20)
        assert (msg.sender, msg.payload) == (peer_id, "after the rebuild")
        await bob.send_data("welcome back", to=[peer_id or ""])
        assert (await alice.next_data(20)).payload == "welcome back"
        assert not alice.errors and not bob.errors
    finally:
        for client in (alice, bob):
            await client.close()
