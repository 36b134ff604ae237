"""TURN REST credentials, as coturn's `use-auth-secret` checks them.

The hub and the TURN server share one secret (TURN_SECRET, coturn's `static-auth-secret`); the
hub hands each peer a username that carries its own expiry and a password derived from it, so
the TURN server needs no database and a leaked credential dies by itself:

    username   = "<unix expiry>:<peer>"
    credential = base64(HMAC-SHA1(secret, username))

(draft-uberti-behave-turn-rest). coturn checks the expiry when an allocation is made; an
allocation already running is kept alive by its refreshes. The secret itself never leaves
this module's objects: it is kept out of their repr, and nothing here logs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import NamedTuple

# Fresh credentials go out when this share of their lifetime has passed: a client that gathers
# again (an ICE restart, a new connection) then never presents an expired one.
REFRESH_AT = 0.75


class TurnCredential(NamedTuple):
    username: str
    credential: str
    expires: int  # unix time


def rest_credential(secret: str, user: str, expires: int) -> TurnCredential:
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return TurnCredential(username, base64.b64encode(digest).decode(), expires)


@dataclass(frozen=True)
class TurnRest:
    """Mints TURN REST credentials valid for `ttl` seconds."""

    secret: str = field(repr=False)
    ttl: float = 3600.0

    def __post_init__(self) -> None:
        if not self.secret:
            raise ValueError("the TURN secret must not be empty")
        if self.ttl <= 0:
            raise ValueError(f"the TURN credential lifetime must be positive, not {self.ttl}")

    def mint(self, user: str, now: float) -> TurnCredential:
        return rest_credential(self.secret, user, int(now + self.ttl))

    @property
    def refresh_interval(self) -> float:
        """Seconds between one set of credentials and the next."""
        return self.ttl * REFRESH_AT
