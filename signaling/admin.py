"""The admin HTTP API, for operators: list rooms, remove a participant, close a room.

Authorized by a room token with the `admin` grant (signaling.auth), sent as
`Authorization: Bearer <token>`: a token for room "*" manages every room, one for room R only R.
Without AUTH_SECRET there are no tokens, and the API answers 403 to everything. Routes:

    GET    /admin/rooms                                rooms, their participants and tracks
    GET    /admin/rooms/{room}                         one room
    DELETE /admin/rooms/{room}/participants/{peer_id}  remove a participant (told `removed`)
    DELETE /admin/rooms/{room}                         close a room (each told `room_closed`)

Removed participants are told why (an `error` with the code) and their sockets are closed; they
may join again, as with LiveKit's RemoveParticipant and DeleteRoom (deny them with tokens: stop
minting theirs). The README shows each with curl.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from signaling.auth import RoomToken, TokenError, verify
from signaling.protocol import ErrorCode
from signaling.session import Membership

if TYPE_CHECKING:
    from signaling.hub import Hub

logger = logging.getLogger(__name__)


class AdminApi:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/rooms", self.list_rooms)
        app.router.add_get("/admin/rooms/{room}", self.get_room)
        app.router.add_delete("/admin/rooms/{room}", self.close_room)
        app.router.add_delete("/admin/rooms/{room}/participants/{peer_id}", self.remove)

    async def list_rooms(self, request: web.Request) -> web.Response:
        token = self._authorize(request, None)
        roster = self.hub.roster
        rooms = [self._room(name) for name in roster.room_names() if token.allows_room(name)]
        return web.json_response({"rooms": rooms})

    async def get_room(self, request: web.Request) -> web.Response:
        room = request.match_info["room"]
        self._authorize(request, room)
        if not self.hub.roster.size(room):
            raise _error(web.HTTPNotFound, "no_room", f"no room {room!r}")
        return web.json_response(self._room(room))

    async def remove(self, request: web.Request) -> web.Response:
        room, peer_id = request.match_info["room"], request.match_info["peer_id"]
        self._authorize(request, room)
        member = self.hub.roster.find(room, peer_id=peer_id)
        if not isinstance(member, Membership):
            raise _error(web.HTTPNotFound, "no_participant", f"no {peer_id!r} in room {room!r}")
        logger.info("admin: removing %s from room %r", peer_id, room)
        message = f"an operator removed you from room {room!r}"
        member.end(ErrorCode.REMOVED, message, "removed")
        return web.Response(status=204)

    async def close_room(self, request: web.Request) -> web.Response:
        room = request.match_info["room"]
        self._authorize(request, room)
        members = self._members(room)
        if not members:
            raise _error(web.HTTPNotFound, "no_room", f"no room {room!r}")
        logger.info("admin: closing room %r (%d participants)", room, len(members))
        message = f"an operator closed room {room!r}"
        for member in members:
            member.end(ErrorCode.ROOM_CLOSED, message, "removed")
        return web.Response(status=204)

    def _authorize(self, request: web.Request, room: str | None) -> RoomToken:
        """The bearer's admin token, good for `room` (None: any room it names), or an HTTP error."""
        if not self.hub.hosts.allows(request.host):
            raise _error(web.HTTPForbidden, "host", f"host {request.host} is not served here")
        secret = self.hub.config.auth_secret
        if secret is None:
            raise _error(web.HTTPForbidden, "disabled", "the admin API needs AUTH_SECRET")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("token_required", "send `Authorization: Bearer <admin token>`")
        try:
            token = verify(secret, credentials.strip())
        except TokenError as exc:
            raise _unauthorized(exc.code, exc.message) from None
        if not token.grants.admin:
            raise _error(web.HTTPForbidden, "not_admin", "the token does not grant `admin`")
        if room is not None and not token.allows_room(room):
            raise _error(
                web.HTTPForbidden, "token_wrong_room", f"the token is for room {token.room!r}"
            )
        return token

    def _members(self, room: str) -> list[Membership]:
        return [m for m in self.hub.roster.members(room) if isinstance(m, Membership)]

    def _room(self, room: str) -> dict[str, Any]:
        return {"name": room, "participants": [_participant(m) for m in self._members(room)]}


def _participant(member: Membership) -> dict[str, Any]:
    tracks = [] if member.media is None else member.media.tracks()
    return {
        "peer_id": member.peer_id,
        "identity": member.identity,
        "name": member.name,
        "role": member.role,
        "grants": {"publish": member.grants.publish, "subscribe": member.grants.subscribe},
        "tracks": [{"id": t.id, "kind": t.kind, "subscribers": t.subscribers} for t in tracks],
    }


def _error(cls: type[web.HTTPError], code: str, message: str) -> web.HTTPError:
    body = json.dumps({"error": code, "message": message})
    return cls(text=body, content_type="application/json")


def _unauthorized(code: str, message: str) -> web.HTTPError:
    error = _error(web.HTTPUnauthorized, code, message)
    error.headers["WWW-Authenticate"] = 'Bearer realm="aiosfu"'
    return error
