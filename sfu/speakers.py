"""Active speakers: who in a room speaks now, loudest first, from the levels in their packets.

A publisher that negotiated the RFC 6464 header extension (`ssrc-audio-level`: browsers and
aiortc do) puts the level of each audio packet in it: 0 (0 dBov, the loudest) to 127 (silence).
The ingress reads that one byte and adds it to its publication's AudioLevel, one sum and one count
per packet (sfu.rtc.ingress); everything else happens here, every TICK (0.25 s), per room, with
no per-packet work:

- each microphone's level over the tick: the mean of its packets' levels (in dBov, so that one
  loud click among silence stays quiet), as a linear amplitude 10^(-dBov/20); 0 when no packet
  came (muted, silent with DTX, gone);
- smoothed: up at once when louder, halved each tick when quieter (the release: a speaker does
  not drop out of the ranking between two words);
- speaking: the smoothed level at or above THRESHOLD (-45 dBov: speech sits at -10 to -40);
- the ranking: the participants speaking, loudest first (a participant's loudest microphone;
  screen audio does not count). `tick()` returns it when its order differs from the last one
  returned, at most once per tick: what the room sends as `active_speakers`.

Sync, with time passed in (the backend's timer calls tick()).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

TICK = 0.25  # seconds between rankings: at most four `active_speakers` a second
THRESHOLD_DBOV = 45
THRESHOLD = 10 ** (-THRESHOLD_DBOV / 20)
RELEASE = 0.5  # the smoothed level falls to this share of itself per quiet tick


class AudioLevel:
    """One publication's levels since the last tick: what the ingress adds to per packet."""

    __slots__ = ("count", "smoothed", "total")

    def __init__(self) -> None:
        self.total = 0  # sum of the packets' levels (dBov, 0 = loudest, 127 = silence)
        self.count = 0
        self.smoothed = 0.0  # linear amplitude, 0..1

    def add(self, level: int) -> None:
        self.total += level
        self.count += 1

    def update(self) -> float:
        """Fold the tick's packets into the smoothed level; returns it."""
        if self.count:
            now = 10 ** (-(self.total / self.count) / 20)
            self.total = self.count = 0
        else:
            now = 0.0
        self.smoothed = now if now >= self.smoothed else max(now, self.smoothed * RELEASE)
        return self.smoothed


@dataclass(frozen=True, slots=True)
class Speaker:
    peer_id: str
    level: float  # smoothed linear amplitude, 0..1


class ActiveSpeakers:
    """One room's ranking; `tick()` takes the microphones of the moment."""

    def __init__(self) -> None:
        self.ranking: tuple[str, ...] = ()
        self.changes = 0  # rankings returned (read by metrics)
        self._next = 0.0

    def tick(
        self, now: float, microphones: Iterable[tuple[str, AudioLevel, bool]]
    ) -> list[Speaker] | None:
        """`microphones`: (peer_id, its level, muted). The new ranking when it changed, else
        None; every TICK at most (earlier calls return None and leave the levels be)."""
        if now < self._next:
            return None
        self._next = now + TICK
        loudest: dict[str, float] = {}
        for peer_id, level, muted in microphones:
            value = level.update()
            if not muted and value >= THRESHOLD and value > loudest.get(peer_id, 0.0):
                loudest[peer_id] = value
        speakers = [
            Speaker(peer_id, round(value, 3))
            for peer_id, value in sorted(loudest.items(), key=lambda item: -item[1])
        ]
        ranking = tuple(s.peer_id for s in speakers)
        if ranking == self.ranking:
            return None
        self.ranking = ranking
        self.changes += 1
        return speakers
