"""SfuBackend: the media plane behind the hub (implements signaling.backend.MediaBackend)."""

from __future__ import annotations

import asyncio
import logging

from signaling.backend import ALL_GRANTS, Grants, PeerSignals

from .config import SfuConfig
from .metrics import MediaTotals
from .participant import Participant
from .room import Room
from .rtc.ice import harden_stun, set_announced_addresses, set_ice_addresses, set_port_range

logger = logging.getLogger(__name__)


# How often subscriptions are given the chance to send an RTCP sender report (each sends one
# every 0.5-1.5 s) and to follow their ICE pair, and publications to send their feedback: one
# timer for the whole server rather than a task per subscriber.
REPORT_INTERVAL = 0.25
# How often publishers that number their packets get transport-cc feedback: libwebrtc's own
# receiver sends it every 100 ms at usual rates (50-250 ms), which its estimator expects.
FEEDBACK_INTERVAL = 0.1


class SfuBackend:
    simulcast = True  # publishers may send l, m, h (sfu.rtc.simulcast); subscribers pick one

    def __init__(self, config: SfuConfig | None = None) -> None:
        self.config = config or SfuConfig()
        self.rooms: dict[str, Room] = {}
        self.totals = MediaTotals()  # what /metrics reads beyond the live rooms (sfu.metrics)
        self._reporter: asyncio.Task[None] | None = None
        self._feedback: asyncio.Task[None] | None = None
        harden_stun()  # anyone who reaches a media port may send anything
        if self.config.ice_addresses is not None:
            set_ice_addresses(self.config.ice_addresses)
        # Process-wide, like ICE_ADDRESSES: the latest backend's settings hold.
        set_port_range(self.config.ice_port_range)
        set_announced_addresses(self.config.ice_announced)

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL)
            # In a function of its own: loop variables left in this coroutine's frame would keep
            # the last participant (and its peer connection) alive through the sleep.
            self._update_sender_reports()
            self._update_speakers()

    async def _feedback_forever(self) -> None:
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            self._send_transport_feedback()

    def _send_transport_feedback(self) -> None:
        for participant in self.participants():
            participant.send_transport_feedback()

    def _update_speakers(self) -> None:
        now = asyncio.get_running_loop().time()
        for room in list(self.rooms.values()):
            room.tick_speakers(now)

    def _update_sender_reports(self) -> None:
        now = asyncio.get_running_loop().time()
        for participant in self.participants():
            for sub in participant.subscriptions.values():
                sub.report(now)
            for pub in participant.publications.values():
                pub.report(now)
            participant.tick(now)

    async def join(
        self,
        room: str,
        peer_id: str,
        signals: PeerSignals,
        *,
        grants: Grants = ALL_GRANTS,
        data: bool = False,
    ) -> Participant:
        if self._reporter is None:
            self._reporter = asyncio.ensure_future(self._report_forever())
        if self._feedback is None:
            self._feedback = asyncio.ensure_future(self._feedback_forever())
        r = self.rooms.get(room)
        if r is None:
            r = self.rooms[room] = Room(room, self._drop_room, self.totals.retire)
            r.log.info("opened")
        participant = Participant(r, peer_id, signals, self.config, grants=grants, data=data)
        self.totals.watch(participant)
        r.join(participant)
        return participant

    def _drop_room(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            self.totals.speaker_changes += room.speakers.changes
            self.totals.data.update(room.data_counts)
            room.log.info("closed")

    def participants(self) -> list[Participant]:
        return [p for r in self.rooms.values() for p in r.participants.values()]

    async def close(self) -> None:
        for task in (self._reporter, self._feedback):
            if task is not None:
                task.cancel()
        self._reporter = self._feedback = None
        await asyncio.gather(*(p.close() for p in self.participants()), return_exceptions=True)
