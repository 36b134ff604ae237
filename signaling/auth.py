"""Room tokens: HS256 JWTs that say who may join which room, and what they may do there.

With AUTH_SECRET set, `join` must carry a token minted with it (`aiosfu token`, or any JWT
library). Its claims, as LiveKit's access tokens carry them, in our own spelling:

    {"sub": "alice@example.com",         identity: one participant per identity per room
     "name": "Alice",                    display name shown to the others (optional)
     "room": "standup",                  the room, or "*" for every room
     "nbf": 1717171717, "exp": 1717175317,
     "grants": {"publish": true, "subscribe": true, "data": true, "admin": false}}

A token for "*" serves any room: bots that join wherever they are sent, operators of the admin
API. The secret is shared by the server and whatever mints tokens (an application's backend);
it never reaches a client. Verifying is synchronous and pure: time is passed in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import jwt

from signaling.backend import ALL_GRANTS, Grants

ALGORITHM: Final = "HS256"
ANY_ROOM: Final = "*"
# RFC 7518 asks for a key at least as long as the hash; PyJWT warns below it.
MIN_SECRET_BYTES: Final = 32
# Clocks of the server and of whatever mints tokens may differ by this much.
LEEWAY_SECONDS: Final = 10


class TokenError(Exception):
    """A token that does not admit its bearer; `code` is a stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RoomToken:
    identity: str
    room: str
    name: str | None
    grants: Grants
    expires: int  # unix time

    def allows_room(self, room: str) -> bool:
        return self.room in (ANY_ROOM, room)


def check_secret(secret: str) -> None:
    """Raise ValueError for a secret too short to be safe."""
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"AUTH_SECRET must be at least {MIN_SECRET_BYTES} bytes long "
            "(make one with: openssl rand -base64 32)"
        )


def mint(
    secret: str,
    *,
    room: str,
    identity: str,
    name: str | None = None,
    ttl: float = 3600,
    grants: Grants = ALL_GRANTS,
    now: float | None = None,
    not_before: float | None = None,
) -> str:
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": identity,
        "room": room,
        "iat": issued,
        "nbf": issued if not_before is None else int(not_before),
        "exp": issued + int(ttl),
        "grants": {
            "publish": grants.publish,
            "subscribe": grants.subscribe,
            "data": grants.data,
            "admin": grants.admin,
        },
    }
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str | None, *, now: float | None = None) -> RoomToken:
    """The token's claims, or TokenError saying why it admits no one."""
    if not token:
        raise TokenError("token_required", "this server needs a room token in `join.token`")
    try:
        # The signature first; the times below, against the clock passed in.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={
                "require": ["exp", "nbf", "sub"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenError(
            "token_invalid", "the room token's signature does not match this server's secret"
        ) from None
    except jwt.InvalidTokenError as exc:
        raise TokenError("token_invalid", f"the room token is not valid: {exc}") from None
    _check_times(claims, time.time() if now is None else now)
    return _room_token(claims)


def _check_times(claims: dict[str, Any], now: float) -> None:
    expires, not_before = claims["exp"], claims["nbf"]
    if not all(
        isinstance(t, int | float) and not isinstance(t, bool) for t in (expires, not_before)
    ):
        raise TokenError("token_invalid", "the room token's `exp` and `nbf` must be numbers")
    if now > expires + LEEWAY_SECONDS:
        raise TokenError("token_expired", f"the room token expired {now - expires:.0f}s ago")
    if now < not_before - LEEWAY_SECONDS:
        raise TokenError(
            "token_not_yet_valid", f"the room token is valid only in {not_before - now:.0f}s (nbf)"
        )


def _room_token(claims: dict[str, Any]) -> RoomToken:
    identity, room, name = claims.get("sub"), claims.get("room"), claims.get("name")
    grants = claims.get("grants", {})
    if not isinstance(identity, str) or not identity or len(identity) > 256:
        raise TokenError("token_invalid", "the room token's `sub` (identity) must be a string")
    if not isinstance(room, str) or not room:
        raise TokenError("token_invalid", "the room token names no `room`")
    if name is not None and not isinstance(name, str):
        raise TokenError("token_invalid", "the room token's `name` must be a string")
    if not isinstance(grants, dict) or not all(
        isinstance(grants.get(k, False), bool) for k in ("publish", "subscribe", "data", "admin")
    ):
        raise TokenError("token_invalid", "the room token's `grants` must map names to booleans")
    return RoomToken(
        identity=identity,
        room=room,
        name=name,
        grants=Grants(
            publish=grants.get("publish", True),
            subscribe=grants.get("subscribe", True),
            data=grants.get("data", True),
            admin=grants.get("admin", False),
        ),
        expires=int(claims["exp"]),
    )


@dataclass(frozen=True, slots=True)
class Admission:
    """Who a `join` lets in: its identity (None without tokens), display name and grants."""

    identity: str | None
    name: str | None
    grants: Grants


def admit(
    secret: str | None, room: str, token: str | None, name: str | None, *, now: float | None = None
) -> Admission:
    """What a `join` to `room` with this token and name admits; TokenError if nothing.

    Without a secret rooms are open: the client's token is ignored, its name taken as it is.
    With one, the token's name wins over the client's (the application vouches for it).
    """
    if secret is None:
        return Admission(identity=None, name=name, grants=ALL_GRANTS)
    claims = verify(secret, token, now=now)
    if not claims.allows_room(room):
        raise TokenError(
            "token_wrong_room", f"the room token is for room {claims.room!r}, not {room!r}"
        )
    return Admission(
        identity=claims.identity,
        name=claims.name if claims.name is not None else name,
        grants=claims.grants,
    )
