"""The admin HTTP API against the real server, with curl's view of it (aiohttp requests): it lists
rooms, participants and their tracks; removes a participant; closes a room; and answers nothing
without an admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from signaling.auth import mint
from signaling.backend import Grants
from tests.conftest import LOOPBACK, serving
from tests.sfu.test_tokens import SECRET, token
from tests.util import eventually, recv

ADMIN = mint(SECRET, room="*", identity="ops", grants=Grants(admin=True))


@pytest.fixture
async def secured() -> AsyncIterator[RunningServer]:
    async with serving(auth_secret=SECRET) as running:
        yield running


async def call(
    server: RunningServer, method: str, path: str, bearer: str | None = ADMIN
) -> tuple[int, Any]:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    url = f"http://127.0.0.1:{server.port}{path}"
    async with aiohttp.ClientSession() as http, http.request(method, url, headers=headers) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        if r.status == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        return r.status, body


async def test_list_remove_and_close(secured: RunningServer) -> None:
    clients = []
    for identity, room in (("alice", "standup"), ("bob", "standup"), ("carol", "retro")):
        client = Client(
            secured.url,
            room,
            token=token(room=room, identity=identity, name=identity.title()),
            ice_addresses=LOOPBACK,
        )
        await client.connect()
        clients.append(client)
    alice, bob, carol = clients
    try:
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        await recv((await bob.next_track()).track)

        status, body = await call(secured, "GET", "/admin/rooms")
        assert status == 200
        rooms = {room["name"]: room for room in body["rooms"]}
        assert set(rooms) == {"standup", "retro"}
        standup = rooms["standup"]["participants"]
        assert [(p["identity"], p["name"], p["peer_id"]) for p in standup] == [
            ("alice", "Alice", alice.peer_id),
            ("bob", "Bob", bob.peer_id),
        ]
        (track,) = standup[0]["tracks"]
        assert (track["kind"], track["subscribers"]) == ("video", 1)
        assert standup[1]["tracks"] == []
        assert standup[0]["grants"] == {"publish": True, "subscribe": True}

        status, room = await call(secured, "GET", "/admin/rooms/retro")
        assert status == 200 and [p["identity"] for p in room["participants"]] == ["carol"]

        # Remove bob: he is told why and his socket closes; alice sees him leave.
        status, _ = await call(
            secured, "DELETE", f"/admin/rooms/standup/participants/{bob.peer_id}"
        )
        assert status == 204
        await eventually(lambda: "" if [e.code for e in bob.errors] == ["removed"] else "not yet")
        await eventually(lambda: "" if bob.peer_id not in alice.participants else "bob listed")
        status, body = await call(
            secured, "DELETE", f"/admin/rooms/standup/participants/{bob.peer_id}"
        )
        assert (status, body["error"]) == (404, "no_participant")

        # Close standup: alice is told; retro goes on.
        assert (await call(secured, "DELETE", "/admin/rooms/standup"))[0] == 204
        await eventually(lambda: "" if [e.code for e in alice.errors] == ["room_closed"] else "-")
        await eventually(lambda: "" if len(secured.backend.participants()) == 1 else "not yet")
        status, body = await call(secured, "GET", "/admin/rooms")
        assert [room["name"] for room in body["rooms"]] == ["retro"]
        assert await carol.ping() < 5 and not carol.errors
    finally:
        for client in clients:
            await client.close()


async def test_without_an_admin_token_nothing_is_answered(secured: RunningServer) -> None:
    member = Client(secured.url, "standup", token=token(room="standup"), ice_addresses=LOOPBACK)
    await member.connect()
    try:
        path = f"/admin/rooms/standup/participants/{member.peer_id}"
        cases = [
            (None, 401, "token_required"),
            ("garbage", 401, "token_invalid"),
            (
                mint("f" * 64, room="*", identity="x", grants=Grants(admin=True)),
                401,
                "token_invalid",
            ),
            (token(room="standup"), 403, "not_admin"),  # a participant's token
            (
                mint(SECRET, room="retro", identity="x", grants=Grants(admin=True)),
                403,
                "token_wrong_room",
            ),
        ]
        for bearer, status, code in cases:
            for method, where in (("GET", "/admin/rooms/standup"), ("DELETE", path)):
                got, body = await call(secured, method, where, bearer)
                assert (got, body["error"]) == (status, code), (method, bearer)
        assert await member.ping() < 5 and not member.errors  # still in its room
        # A room admin sees only its room.
        retro_admin = mint(SECRET, room="retro", identity="x", grants=Grants(admin=True))
        assert (await call(secured, "GET", "/admin/rooms", retro_admin))[1] == {"rooms": []}
    finally:
        await member.close()


async def test_without_auth_secret_the_api_is_off(server: RunningServer) -> None:
    status, body = await call(server, "GET", "/admin/rooms")
    assert (status, body["error"]) == (403, "disabled")
