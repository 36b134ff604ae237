"""Dynacast: which simulcast layers a publisher should send, from which ones anyone wants.

A layer above every one the subscriptions want (nobody in the room, or every subscriber on a
lower one, by choice or by bandwidth) costs the publisher uplink and encoder time for nothing:
the server tells it to pause that encoding (the `publish_layers` message; the page sets the
encoding's `active` to false), and to resume it as soon as someone wants it again. LiveKit calls
this dynacast; Janus and mediasoup keep every layer flowing.

Resuming is at once (a subscriber waits for it); pausing waits until a layer has been unwanted
for PAUSE_DELAY, so that an `auto` subscription moving down and back up, or a subscriber
switching tabs, does not make the publisher restart an encoder each time. Sync, time passed in:
sfu.participant calls `update()` whenever the wanted layers may have changed, and on its timer.
"""

from __future__ import annotations

PAUSE_DELAY = 3.0  # seconds a layer must be unwanted before it is paused


class Dynacast:
    __slots__ = ("_unwanted_since", "active", "ranks")

    def __init__(self, ranks: tuple[int, ...]) -> None:
        self.ranks = tuple(sorted(ranks))  # the publication's layers (0 = `l`, 1 = `m`, 2 = `h`)
        self.active: frozenset[int] = frozenset(ranks)  # what the publisher sends
        self._unwanted_since: dict[int, float] = {}  # active but unwanted layer -> since when

    def update(self, wanted: set[int], now: float) -> frozenset[int] | None:
        """The layers to send from now on when they differ from `active` (which becomes them),
        else None. `wanted`: the ranks some subscription wants, flowing or not (one the
        publication lacks stands for the layer it would get: the highest below, else the lowest
        above)."""
        # Every layer up to the highest one wanted: an `auto` subscription that meets congestion
        # steps down at once, which it can only do to a layer that flows (LiveKit's clients
        # enable every encoding up to the highest quality subscribed, too).
        top = max((self._layer_for(rank) for rank in wanted), default=None)
        wanted = {rank for rank in self.ranks if top is not None and rank <= top}
        active = set(self.active) | wanted  # resumed at once
        for rank in list(active):
            if rank in wanted:
                self._unwanted_since.pop(rank, None)
                continue
            since = self._unwanted_since.setdefault(rank, now)
            if now - since >= PAUSE_DELAY:
                active.discard(rank)
                del self._unwanted_since[rank]
        if active == self.active:
            return None
        self.active = frozenset(active)
        return self.active

    def _layer_for(self, rank: int) -> int:
        below = [r for r in self.ranks if r <= rank]
        return below[-1] if below else self.ranks[0]

    def next_change(self) -> float | None:
        """When update() may next pause a layer (None: nothing pending)."""
        if not self._unwanted_since:
            return None
        return min(self._unwanted_since.values()) + PAUSE_DELAY
