"""Resume: a participant outlives its socket for a grace period, and its client can claim it back.

Every `welcome` carries a fresh resume token, which names one Membership (one stay in one room)
and nothing else. When the socket goes without a `leave`, the session parks its membership here
instead of leaving: the participant stays in the room, its media keeps flowing if the peer
connection still works, and nobody is told anything. A `join` with the token and the same room,
on a new socket, within `grace` seconds, claims it back (same peer_id); after that the
membership leaves with reason `disconnected` and the token is worthless.

A token is single use: claiming it revokes it, and the resumed `welcome` carries the next one. A
client may also come back before the server noticed that its old socket died (a half-open TCP
connection: the heartbeat needs up to 30 s): the claim then takes the membership from that
socket, which is closed.

Synchronous, like the roster: a claim and the bookkeeping it implies happen with no await in
between. The expiry itself (leaving the room, closing the media) is the caller's coroutine.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from signaling.protocol import LeaveReason

M = TypeVar("M")

# Ends a parked membership: leaves the room with this reason and closes its media.
Expire = Callable[[LeaveReason], Coroutine[Any, Any, None]]


class ResumeDesk(Generic[M]):
    """The tokens that name memberships, and the memberships waiting for their client."""

    def __init__(self, grace: float) -> None:
        assert grace >= 0, "the grace period cannot be negative"
        self.grace = grace
        self.closing = False  # no more parking (the hub is shutting down)
        self._tokens: dict[str, M] = {}
        self._token_of: dict[int, str] = {}  # id(membership) -> its current token
        self._parked: dict[int, tuple[M, asyncio.TimerHandle, Expire]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def issue(self, membership: M) -> str:
        """A new token for this membership; its previous one stops working."""
        self.revoke(membership)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = membership
        self._token_of[id(membership)] = token
        return token

    def revoke(self, membership: M) -> None:
        """The membership can no longer be resumed (it left, or its token was claimed)."""
        token = self._token_of.pop(id(membership), None)
        if token is not None:
            self._tokens.pop(token, None)

    def peek(self, token: str) -> M | None:
        """The membership a token names, if it still can be resumed (nothing is consumed)."""
        return self._tokens.get(token)

    def claim(self, token: str) -> M | None:
        """Consume the token: the membership it names, unparked, or None."""
        membership = self._tokens.get(token)
        if membership is None:
            return None
        self.revoke(membership)
        self.unpark(membership)
        return membership

    def park(self, membership: M, expire: Expire) -> bool:
        """Keep the membership for the grace period, then `expire("disconnected")` it.

        False when resuming is off (no grace, or the hub is closing) or the membership has no
        token to be claimed with: the caller leaves at once."""
        if self.closing or self.grace <= 0 or id(membership) not in self._token_of:
            return False
        timer = asyncio.get_running_loop().call_later(
            self.grace, self._expire, membership, "disconnected"
        )
        self._parked[id(membership)] = (membership, timer, expire)
        return True

    def unpark(self, membership: M) -> bool:
        """No longer waiting (claimed, or ended for another reason); True if it was parked."""
        entry = self._parked.pop(id(membership), None)
        if entry is None:
            return False
        entry[1].cancel()
        return True

    def is_parked(self, membership: M) -> bool:
        return id(membership) in self._parked

    def expire_now(self, membership: M, reason: LeaveReason) -> None:
        """End a parked membership at once (its media failed meanwhile, say)."""
        self._expire(membership, reason)

    def parked(self) -> int:
        return len(self._parked)

    async def close(self) -> None:
        """Stop parking, and end every parked membership now."""
        self.closing = True
        for key in list(self._parked):
            self._expire(self._parked[key][0], "disconnected")
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _expire(self, membership: M, reason: LeaveReason) -> None:
        entry = self._parked.pop(id(membership), None)
        if entry is None:
            return
        entry[1].cancel()
        self.revoke(membership)
        task = asyncio.ensure_future(entry[2](reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
