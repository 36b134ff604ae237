"""Limits: what one client may cost the server, each with a safe default, a setting and a code.

One frozen Limits for the whole server, handed to the hub (HubConfig.limits) and to the media
plane (sfu's SfuConfig.limits): the hub enforces those on sockets, frames and rooms, the media
plane those on tracks and candidates. The entry point fills it from flags and environment
variables (README, "Limits"). Each refusal is counted by its limit's name (`LIMITS`) in
`aiosfu_limit_refusals_total{limit}`. 0 turns a limit off, where that makes sense.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from signaling.protocol import MAX_SDP_CHARS

# The metric label of every limit, so that each series exists (at 0) before it first refuses.
LIMITS = (
    "origin",  # handshake from a page of another origin (403)
    "host",  # handshake for a host name not in ALLOWED_HOSTS (403)
    "connections_per_ip",  # handshake from an address holding too many sockets (429)
    "join_timeout",  # a socket in no room for too long (closed)
    "room_full",  # a join to a full room
    "tracks",  # an offer publishing too many tracks
    "sdp_size",  # an offer or answer over the SDP size
    "mlines",  # an offer or answer with too many m-lines
    "candidates",  # too many candidates for one description
    "messages",  # a flood of frames (rate_limited, once per flood)
    "bytes",  # a flood of bytes (rate_limited, once per flood)
    "flood",  # a flood that went on: the socket is closed
    "data_size",  # a data channel message over the size limit
    "data_messages",  # a flood of data channel messages (data_rate_limited, once per flood)
    "data_bytes",  # a flood of data channel bytes (data_rate_limited, once per flood)
    "data_grant",  # a data channel message from a participant whose token does not grant data
)


@dataclass(frozen=True, kw_only=True)
class Limits:
    # Frames a client may send per second, sustained, and in a burst (a join with its offer and
    # a browser's trickled candidates take a few dozen). 0 turns the limit off.
    message_rate: float = 50.0
    message_burst: int = 200
    # Bytes of frames per second, sustained, and in a burst (at least one largest frame).
    byte_rate: float = 256 * 1024
    byte_burst: int = 1024 * 1024
    # A client still being dropped this long after its flood began, or after this many dropped
    # frames, is disconnected (1008).
    flood_seconds: float = 5.0
    flood_frames: int = 1000
    # A socket in no room for this long (before its first join, or after a leave) is closed.
    join_timeout: float = 10.0
    # Open sockets per client address (429 beyond).
    connections_per_ip: int = 64
    # Participants per room (`room_full` beyond): more than the benchmark's N=100 rooms.
    participants: int = 200
    # Tracks one participant may publish at once (`too_many_tracks` beyond).
    tracks: int = 16
    # Remote candidates for one description (its trickle, before or after it): aioice checks
    # every pair, sending STUN wherever a candidate points.
    candidates: int = 64
    # Characters of one client SDP, and m-lines in it (`too_large` beyond); at most the
    # protocol's own cap. m-lines are never reused, so a long stay in a busy room grows its SDP.
    sdp_chars: int = MAX_SDP_CHARS
    mlines: int = 256
    # Data channel messages (sfu.datachannels): bytes of one message, and messages and bytes per
    # second per participant, sustained and in a burst: signaling's rates. aiortc's SCTP is
    # pure Python: each message costs the server ~0.1 ms to take in, and as much again for
    # each participant it goes to (README, "Data channels").
    data_message_bytes: int = 16 * 1024
    data_rate: float = 50.0
    data_burst: int = 200
    data_byte_rate: float = 256 * 1024
    data_byte_burst: int = 1024 * 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"limit {f.name} must be >= 0, not {getattr(self, f.name)}")
        if self.message_rate and self.message_burst < 1:
            raise ValueError("message_burst must be at least 1 when message_rate is set")
        if self.data_rate and self.data_burst < 1:
            raise ValueError("data_burst must be at least 1 when data_rate is set")
        if self.data_byte_rate and self.data_byte_burst < self.data_message_bytes:
            raise ValueError("data_byte_burst must be at least data_message_bytes")
        if self.flood_frames < 1 or self.flood_seconds <= 0:
            raise ValueError("flood_frames and flood_seconds must be positive")
        if not 0 < self.sdp_chars <= MAX_SDP_CHARS:
            raise ValueError(f"sdp_chars must be between 1 and {MAX_SDP_CHARS}")
