"""Who is in which room, under which name: the hub's view of rooms, independent of media.

Everything here is synchronous, so a join or leave and the broadcast announcing it happen with no
await in between: every participant either is in a newcomer's `welcome` or gets a
`participant_joined` for it, never both, never neither. Empty rooms are dropped.
"""

from __future__ import annotations

import secrets
from typing import Protocol

from signaling.protocol import (
    LeaveReason,
    Msg,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    Role,
)


class Member(Protocol):
    @property
    def room(self) -> str: ...

    @property
    def peer_id(self) -> str: ...

    @property
    def name(self) -> str | None: ...

    @property
    def identity(self) -> str | None:
        """Its room token's identity; None in open rooms."""
        ...

    @property
    def role(self) -> Role: ...

    def send(self, msg: Msg) -> None:
        """Queue a message for this member's client; never raises, never blocks."""
        ...


class Roster:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, Member]] = {}
        self._peer_ids: set[str] = set()

    def new_peer_id(self) -> str:
        """A peer id unused in the whole hub, reserved until release() or remove()."""
        while (peer_id := secrets.token_urlsafe(6)) in self._peer_ids:
            pass
        self._peer_ids.add(peer_id)
        return peer_id

    def release(self, peer_id: str) -> None:
        """Give back an id whose join failed before add()."""
        self._peer_ids.discard(peer_id)

    def add(self, member: Member) -> list[ParticipantInfo]:
        """Put a member in its room, tell the others; returns who was already there."""
        room = self._rooms.setdefault(member.room, {})
        assert member.peer_id not in room, "a peer id joins a room once"
        others = list(room.values())
        room[member.peer_id] = member
        joined = ParticipantJoined(peer_id=member.peer_id, name=member.name, role=member.role)
        for other in others:
            other.send(joined)
        return [_info(o) for o in others]

    def remove(self, member: Member, reason: LeaveReason) -> None:
        """Take a member out of its room and tell the others. Idempotent."""
        self._peer_ids.discard(member.peer_id)
        room = self._rooms.get(member.room)
        if room is None or room.get(member.peer_id) is not member:
            return
        del room[member.peer_id]
        if not room:
            del self._rooms[member.room]
            return
        left = ParticipantLeft(peer_id=member.peer_id, name=member.name, reason=reason)
        for other in room.values():
            other.send(left)

    def find(
        self, room: str, *, peer_id: str | None = None, identity: str | None = None
    ) -> Member | None:
        """The member of a room with this peer id, or this identity."""
        for member in self._rooms.get(room, {}).values():
            if member.peer_id == peer_id or (identity is not None and member.identity == identity):
                return member
        return None

    def members(self, room: str) -> list[Member]:
        return list(self._rooms.get(room, {}).values())

    def room_names(self) -> list[str]:
        return list(self._rooms)

    def size(self, room: str) -> int:
        """How many participants a room has (0 for a room that does not exist)."""
        return len(self._rooms.get(room, ()))

    def others(self, member: Member) -> list[ParticipantInfo]:
        """Everyone in the member's room but itself, in joining order."""
        room = self._rooms.get(member.room, {})
        return [_info(o) for o in room.values() if o is not member]

    def rooms(self) -> dict[str, list[ParticipantInfo]]:
        """A snapshot: room name -> participants, in joining order."""
        return {name: [_info(m) for m in room.values()] for name, room in self._rooms.items()}


def _info(member: Member) -> ParticipantInfo:
    return ParticipantInfo(peer_id=member.peer_id, name=member.name, role=member.role)
