"""Where each track's frames go in a participant's file: the sync decision, as plain values.

A file starts at 0 with its earliest frame, and each track's first frame sits at its true
distance from it: the distance between their capture times on the publisher's clock (its
sender reports, sfu.senderclock), which is what keeps audio and video in sync. Past the first
frame a track follows its own RTP timestamps, so gaps (loss, a stalled stream) stay gaps and
nothing drifts by the arrival jitter of each frame.

One exception at the start: a video track can only start on a keyframe, and a subscription
often starts on a recent one the server replays (up to half a second old), while audio starts
with the next packet. Video captured before the first audio frame, by at most PREROLL (1 s), that
reached us no earlier than it (give or take SLACK: it was replayed, not sent ahead) is decoder
pre-roll: the file starts with the audio, and those earlier video frames go in one millisecond
apart at its start (a decoder needs them, a viewer sees a blink), so audio and video start
together. Video that really started earlier keeps its true offset. The other way round, a video
track whose first keyframe comes at most PULL_BACK after the audio began (the keyframe the server
asked for when the subscription started) has that first frame shown from the file's start, a
still until the next frame, which is at its own time: the file starts with a picture.

A track whose capture times are unknown (no sender report yet) is placed by its arrival, less
the delay the other tracks showed between capture and arrival. Sender reports that would put
one track more than MAX_SPREAD away from the others (the server's estimate, before the
publisher's own report, from a machine whose clock disagrees) are not trusted: then the whole
file is placed by arrival times, which are within network jitter of each other.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Final

MAX_SPREAD: Final = 1.0  # seconds between two tracks' capture-to-arrival delays
# The server replays keyframes up to 0.5 s old (its clock) to a new subscription; the publisher's
# capture times of those frames can spread a little wider.
PREROLL: Final = 1.0
PULL_BACK: Final = 0.5  # a keyframe asked for answers within a few hundred ms
SLACK: Final = 0.15  # audio leaves aiortc's jitter buffer ~80 ms after it arrives; video ~1 frame


@dataclass(frozen=True)
class FirstFrame:
    """A track's first frame in a file."""

    pts: int  # in the track's clock
    clock_rate: int
    kind: str  # "audio" or "video"
    arrival: float  # our wall clock (time.time()) when it arrived
    capture: float | None  # the publisher's capture time, if a sender report told it


@dataclass(frozen=True)
class Basis:
    """The clock a file's tracks are placed on, and where that clock's 0 is."""

    by_sender: bool  # capture times (publisher's clock), or else arrival times (ours)
    delay: float  # typical capture-to-arrival delay, to place a track without capture times
    origin: float  # the file's time 0, on that clock

    def when(self, frame: FirstFrame) -> float:
        """The frame's time on this basis."""
        if self.by_sender and frame.capture is not None:
            return frame.capture
        return frame.arrival - self.delay if self.by_sender else frame.arrival

    def offset(self, frame: FirstFrame) -> int:
        """Where the frame goes in the file, in its own clock's ticks (never before 0)."""
        return max(0, round((self.when(frame) - self.origin) * frame.clock_rate))

    def pulled_back(self, frame: FirstFrame) -> bool:
        """Whether the file shows this first frame from its start (see PULL_BACK)."""
        offset = self.offset(frame)
        return frame.kind == "video" and 0 < offset <= PULL_BACK * frame.clock_rate

    def lead(self, frame: FirstFrame) -> int:
        """How long before the file's start the frame was captured (pre-roll), in its ticks."""
        return max(0, round((self.origin - self.when(frame)) * frame.clock_rate))


def choose_basis(firsts: list[FirstFrame]) -> Basis:
    """The basis for a file whose tracks start with these frames (at least one)."""
    assert firsts, "a file starts with at least one frame"
    delays = [f.arrival - f.capture for f in firsts if f.capture is not None]
    by_sender = bool(delays) and max(delays) - min(delays) <= MAX_SPREAD
    delay = statistics.median(delays) if by_sender else 0.0
    basis = Basis(by_sender, delay, 0.0)
    origin = min(basis.when(f) for f in firsts)
    audio = [f for f in firsts if f.kind == "audio"]
    if audio:
        audio_start = min(basis.when(f) for f in audio)
        audio_arrival = min(f.arrival for f in audio)
        early = [f for f in firsts if basis.when(f) < audio_start]
        if early and all(
            audio_start - basis.when(f) <= PREROLL and f.arrival >= audio_arrival - SLACK
            for f in early
        ):
            origin = audio_start
    return Basis(by_sender, delay, origin)
