"""What the hub needs to know from the entry point; validated once, at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.ice import IceConfig
from signaling.protocol import IceMode, IceServerInfo


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    # ICE servers and mode sent in `welcome` (TURN credentials minted per peer, and sent again
    # before they expire: signaling.ice).
    ice: IceConfig = field(default_factory=IceConfig)
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
        if self.max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, not {self.max_message_bytes}")
        if self.message_rate < 0 or (self.message_rate and self.message_burst < 1):
            raise ValueError("message_rate must be >= 0, and message_burst >= 1 when it is set")
        if self.heartbeat < 0:
            raise ValueError(f"heartbeat must be >= 0 seconds, not {self.heartbeat}")

    def welcome_ice_mode(self) -> IceMode:
        return self.ice.ice_mode

    def welcome_ice_servers(self, peer_id: str, now: float) -> list[IceServerInfo]:
        """What one client puts in RTCConfiguration.iceServers (`now`: unix time)."""
        return self.ice.client_infos(peer_id, now)
