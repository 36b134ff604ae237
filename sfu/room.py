"""Room: a named group of participants; all forwarding happens inside one room.

The room only wires publications to subscribers: when a participant publishes, every other
participant subscribes; when it leaves or unpublishes, they unsubscribe.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from signaling.backend import SpeakersChanged, TrackEnded
from signaling.log import bind
from signaling.protocol import DataReceived, DataSend, encode_data

from .speakers import ActiveSpeakers

if TYPE_CHECKING:
    from .participant import Participant
    from .publication import Publication
    from .subscription import Subscription

logger = logging.getLogger(__name__)


class Room:
    def __init__(
        self,
        name: str,
        on_empty: Callable[[Room], None],
        on_retire: Callable[[Iterable[Publication | Subscription]], None] = lambda _: None,
    ) -> None:
        self.name = name
        self.participants: dict[str, Participant] = {}
        self.log = bind(logger, room=name)
        self.speakers = ActiveSpeakers()
        # Data channel messages (sfu.datachannels): (counter, channel kind) -> count.
        self.data_counts: Counter[tuple[str, str]] = Counter()
        self._on_empty = on_empty
        # Told of each publication and subscription as it leaves the room (for metrics totals).
        self._on_retire = on_retire

    def join(self, participant: Participant) -> None:
        for other in self.participants.values():
            for pub in other.publications.values():
                participant.tell(pub.state())
                participant.subscribe(pub)
        self.participants[participant.id] = participant
        participant.log.info("joined")

    def publish(self, publication: Publication) -> None:
        # Its state first: it reaches each client before the offer that forwards the track.
        self.announce(publication)
        for participant in self.participants.values():
            if participant.id != publication.publisher_id:
                participant.subscribe(publication)

    def announce(self, publication: Publication) -> None:
        """Tell everyone else a publication's state (new, or changed)."""
        state = publication.state()
        for participant in self.participants.values():
            if participant.id != publication.publisher_id:
                participant.tell(state)

    def unpublish(self, publication: Publication) -> None:
        self._on_retire([publication, *self._subscriptions_to(publication)])
        ended = TrackEnded(publication.publisher_id, publication.id)
        for participant in self.participants.values():
            participant.unsubscribe(publication)
            if participant.id != publication.publisher_id:
                participant.tell(ended)

    def republish(self, old: Publication, new: Publication) -> None:
        """`new` takes `old`'s place (same id: its publisher rebuilt its connection): the
        subscribers forward it where they forwarded `old`, and nobody is told anything."""
        self._on_retire([old, *self._subscriptions_to(old)])
        for participant in self.participants.values():
            if participant.id != new.publisher_id:
                participant.resubscribe(old, new)

    def leave(self, participant: Participant) -> None:
        if self.participants.pop(participant.id, None) is None:
            return
        self._on_retire(participant.subscriptions.values())
        for pub in participant.publications.values():
            self.unpublish(pub)
        if not self.participants:
            self._on_empty(self)

    def tick_speakers(self, now: float) -> None:
        """Rank who speaks (sfu.speakers) and tell everyone when the ranking changed."""
        microphones = [
            (pub.publisher_id, pub.audio_level, pub.muted)
            for p in self.participants.values()
            for pub in p.publications.values()
            if pub.audio_level is not None and pub.source == "microphone"
        ]
        speakers = self.speakers.tick(now, microphones)
        if speakers is None:
            return
        event = SpeakersChanged(tuple((s.peer_id, s.level) for s in speakers))
        for participant in self.participants.values():
            participant.tell(event)

    def relay_data(self, sender: Participant, kind: str, msg: DataSend) -> None:
        """Relay a data message from `sender` on the channels of `kind` of those it is for:
        everyone else in the room, or the peer ids in `msg.to` (those not here are skipped)."""
        if msg.to is None:
            targets = [p for p in self.participants.values() if p is not sender]
        else:
            found = (self.participants.get(peer_id) for peer_id in dict.fromkeys(msg.to))
            targets = [p for p in found if p is not None and p is not sender]
        if not targets:
            return
        text = encode_data(DataReceived(sender=sender.id, payload=msg.payload, to=msg.to))
        message = text.decode()
        for participant in targets:
            participant.data.deliver(kind, message)

    def publications(self) -> list[Publication]:
        return [pub for p in self.participants.values() for pub in p.publications.values()]

    def _subscriptions_to(self, publication: Publication) -> list[Subscription]:
        subs = (p.subscriptions.get(publication.id) for p in self.participants.values())
        return [sub for sub in subs if sub is not None]
