"""Room tokens against the real server: aiortc clients, real media, a real socket each.

Each refused token gets its code and then a closed socket; grants decide what reaches whom; a
second join of one identity replaces the first, as in LiveKit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from sfu import cli
from sfu.client import Client, ClientError, ClientState
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from signaling.auth import admit, mint, verify
from signaling.backend import Grants
from tests.conftest import LOOPBACK, serving
from tests.sfu.test_metrics import scrape, value
from tests.util import eventually, recv

SECRET = "test-secret-" + "k" * 40
MakeClient = Callable[..., Awaitable[Client]]


def token(room: str = "tokens", identity: str = "alice", **kwargs: object) -> str:
    return mint(SECRET, room=room, identity=identity, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    async with serving(auth_secret=SECRET) as running:
        yield running


@pytest.fixture
async def join(secured: RunningServer) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(tok: str | None, *, room: str = "tokens", name: str | None = None) -> Client:
        client = Client(secured.url, room, name=name, token=tok, ice_addresses=LOOPBACK)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.mark.parametrize(
    ("tok", "code"),
    [
        (None, "token_required"),
        (token(ttl=60, now=1_000_000_000), "token_expired"),
        (token(not_before=4_000_000_000), "token_not_yet_valid"),
        (token(room="elsewhere"), "token_wrong_room"),
        (mint("forged-" + "k" * 40, room="tokens", identity="alice"), "token_invalid"),
    ],
    ids=["none", "expired", "not yet valid", "wrong room", "forged signature"],
)
async def test_a_bad_token_is_refused_with_its_code_then_closed(
    secured: RunningServer, tok: str | None, code: str
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(secured.url) as ws:
        join = {"type": "join", "room": "tokens", "name": "mallory"}
        await ws.send_json(join if tok is None else {**join, "token": tok})
        reply = await asyncio.wait_for(ws.receive_json(), 5)
        assert (reply["type"], reply["code"]) == ("error", code), reply
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008
    assert secured.backend.participants() == []
    assert value(await scrape(secured), "aiosfu_token_refusals_total", code=code) == 1
    client = Client(secured.url, "tokens", token=tok, ice_addresses=LOOPBACK)
    try:  # the Python client says why too
        with pytest.raises(ClientError) as refused:
            await client.connect()
        assert refused.value.code == code
    finally:
        await client.close()


async def test_the_tokens_name_is_what_the_others_see(join: MakeClient) -> None:
    alice = await join(token(identity="alice", name="Alice (verified)"), name="Mallory")
    bob = await join(token(identity="bob"), name="Bob")
    assert alice.welcome is not None and alice.welcome.grants is not None
    assert alice.welcome.grants.publish and alice.welcome.grants.subscribe
    assert bob.welcome is not None
    assert [p.name for p in bob.welcome.participants] == ["Alice (verified)"]


async def test_without_publish_nothing_of_it_reaches_the_others(
    secured: RunningServer, join: MakeClient
) -> None:
    viewer = await join(token(identity="viewer", grants=Grants(publish=False)))
    bob = await join(token(identity="bob"))
    assert viewer.welcome is not None and viewer.welcome.grants is not None
    assert not viewer.welcome.grants.publish
    with pytest.raises(ClientError) as refused:
        await viewer.publish(TestPatternTrack(160, 120, fps=15))
    assert refused.value.code == "publish_not_allowed"

    # The viewer still receives: bob publishes, the viewer decodes his video.
    await bob.publish(TestPatternTrack(160, 120, fps=15))
    from_bob = await viewer.next_track()
    assert from_bob.peer_id == bob.peer_id
    assert (await recv(from_bob.track)).width == 160
    # And nothing of the viewer's reached bob, or the server.
    (viewer_side,) = [p for p in secured.backend.participants() if p.id == viewer.peer_id]
    assert viewer_side.publications == {}
    assert bob.remote_tracks == {} and bob._track_queue.empty()
    assert await viewer.ping() < 5  # the session goes on


async def test_without_subscribe_nothing_is_forwarded_to_it(
    secured: RunningServer, join: MakeClient
) -> None:
    deaf = await join(token(identity="deaf", grants=Grants(subscribe=False)))
    alice = await join(token(identity="alice"))
    carol = await join(token(identity="carol"))
    await alice.publish(TestPatternTrack(160, 120, fps=15))
    from_alice = await carol.next_track()
    await recv(from_alice.track)  # carol, who may subscribe, decodes alice's video
    await deaf.publish(TestPatternTrack(160, 120, fps=15))  # and deaf may publish
    from_deaf = await carol.next_track()
    await recv(from_deaf.track)
    (deaf_side,) = [p for p in secured.backend.participants() if p.id == deaf.peer_id]
    assert deaf_side.subscriptions == {}
    assert deaf.remote_tracks == {}
    assert set(deaf.participants) == {alice.peer_id, carol.peer_id}  # it sees who is there


async def test_a_second_join_of_an_identity_replaces_the_first(
    secured: RunningServer, join: MakeClient
) -> None:
    bob = await join(token(identity="bob"))
    first = await join(token(identity="alice", name="Alice"))
    await first.publish(TestPatternTrack(160, 120, fps=15))
    await recv((await bob.next_track()).track)
    second = await join(token(identity="alice", name="Alice"))

    def replaced() -> str:
        codes = [e.code for e in first.errors]
        return "" if codes == ["replaced"] else f"the first session got {codes}"

    await eventually(replaced)
    # It does not come back on its own: `replaced` ends it, socket closed, failed.
    await first.wait_state(ClientState.FAILED, timeout=5)
    assert first._ws is None and "replaced" in (first.disconnect_reason or "")
    await eventually(
        lambda: "" if set(bob.participants) == {second.peer_id} else f"bob sees {bob.participants}"
    )
    await eventually(lambda: "" if len(secured.backend.participants()) == 2 else "old one kept")
    await second.publish(TestPatternTrack(160, 120, fps=15))
    remote = await bob.next_track()
    assert remote.peer_id == second.peer_id
    assert (await recv(remote.track)).width == 160


def test_aiosfu_token_mints_what_the_server_admits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    argv = ["token", "--room", "r", "--identity", "u", "--name", "N", "--ttl", "2h", "--no-publish"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out.strip()
    admitted = admit(SECRET, "r", printed, None)
    assert (admitted.identity, admitted.name) == ("u", "N")
    assert admitted.grants == Grants(publish=False, subscribe=True, admin=False)
    assert 7100 < verify(SECRET, printed).expires - time.time() <= 7200

    monkeypatch.setenv("AUTH_SECRET", "short")
    assert cli.main(["token", "--room", "r", "--identity", "u"]) == 2
    assert "at least 32 bytes" in capsys.readouterr().err
