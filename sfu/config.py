"""Media-plane settings, filled by the entry point from flags and environment variables."""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.ice import IceConfig
from signaling.limits import Limits

DEFAULT_MAX_BITRATE = 2_500_000


@dataclass(slots=True)
class SfuConfig:
    # Local addresses ICE gathers host candidates on (None: every interface but loopback).
    ice_addresses: list[str] | None = None
    # ICE mode and servers; the server's own peer connections use TURN in turn-only mode only
    # (signaling.ice), never a public STUN server.
    ice: IceConfig = field(default_factory=IceConfig)
    # At most one keyframe request per publication per this many seconds (and none while one
    # is still unanswered: see sfu.keyframes).
    keyframe_interval: float = 0.15
    # The REMB every video publisher gets, in bits/s: an upper bound on what it sends, as
    # Janus's `bitrate` (aiortc's own estimator runs only for publications a bot takes frames of).
    max_bitrate: int = DEFAULT_MAX_BITRATE
    # What one participant may cost; the media plane enforces `tracks` and `candidates`.
    limits: Limits = field(default_factory=Limits)
