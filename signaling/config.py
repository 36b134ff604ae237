"""What the hub needs to know from the entry point; validated once, at construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from signaling.backend import IceServer
from signaling.protocol import ICE_MODES, IceMode, IceServerInfo


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    # Sent to every client in `welcome` (TURN servers left out in "stun-only" mode).
    ice_servers: list[IceServer] = field(default_factory=list)
    ice_mode: str = "all"
    # Longest text frame a client may send. aiohttp's own limit is set to 4x this, so moderately
    # oversize frames get a `too_large` error and the session stays usable; beyond that aiohttp
    # closes the socket with 1009 (message too big) without reading the frame.
    max_message_bytes: int = 256 * 1024
    # Seconds between WebSocket pings; a client that misses the pong (heartbeat / 2) is
    # disconnected. 0 disables it.
    heartbeat: float = 20.0
    # Frames a client may send per second, sustained, and in a burst (a join with its offer and
    # a browser's trickled candidates take a few dozen). 0 turns the limit off.
    message_rate: float = 50.0
    message_burst: int = 200
    # A client still flooding after this many refused frames in a row is disconnected (1008).
    flood_limit: int = 1000
    # Page origins allowed to open /ws besides the server's own ("*": any; signaling.origin).
    allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.ice_mode not in ICE_MODES:
            modes = ", ".join(ICE_MODES)
            raise ValueError(f"ice_mode must be one of {modes}, not {self.ice_mode!r}")
        if self.max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, not {self.max_message_bytes}")
        if self.message_rate < 0 or (self.message_rate and self.message_burst < 1):
            raise ValueError("message_rate must be >= 0, and message_burst >= 1 when it is set")
        if self.heartbeat < 0:
            raise ValueError(f"heartbeat must be >= 0 seconds, not {self.heartbeat}")

    def welcome_ice_mode(self) -> IceMode:
        return cast(IceMode, self.ice_mode)  # validated in __post_init__

    def welcome_ice_servers(self) -> list[IceServerInfo]:
        """What clients put in RTCConfiguration.iceServers; same filter as the server's side."""
        return [
            IceServerInfo(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.ice_servers
            if self.ice_mode != "stun-only" or all(u.startswith("stun") for u in s.urls)
        ]
