"""What the hub needs to know from the entry point; validated once, at construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from signaling.auth import check_secret
from signaling.ice import IceConfig
from signaling.limits import Limits
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
    # Page origins allowed to open /ws besides the server's own ("*": any; signaling.origin).
    allowed_origins: tuple[str, ...] = ()
    # Rates, sizes and counts a client may not exceed (signaling.limits).
    limits: Limits = field(default_factory=Limits)
    # Host names (host or host:port) /ws answers to; empty: any (signaling.hosts).
    allowed_hosts: tuple[str, ...] = ()
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: tuple[str, ...] = ()
    # The room tokens' shared secret (signaling.auth); None: rooms are open. Never logged.
    auth_secret: str | None = field(default=None, repr=False)
    # Seconds a participant whose socket went (without `leave`) stays in its room, media and
    # all, for its client to resume it (signaling.resume); 0 leaves at once.
    resume_grace: float = 30.0
    # On SIGTERM (Hub.drain): seconds the clients, told `going_away`, have to go by themselves
    # (media flowing) before their sockets are closed; and the `retry_after` hint they are given.
    drain_grace: float = 5.0
    drain_retry_after: float = 2.0

    def __post_init__(self) -> None:
        if self.max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be positive, not {self.max_message_bytes}")
        if self.limits.byte_rate and self.limits.byte_burst < self.max_message_bytes:
            raise ValueError("limits.byte_burst must be at least max_message_bytes")
        if self.auth_secret is not None:
            check_secret(self.auth_secret)
        if self.heartbeat < 0:
            raise ValueError(f"heartbeat must be >= 0 seconds, not {self.heartbeat}")
        if self.resume_grace < 0:
            raise ValueError(f"resume_grace must be >= 0 seconds, not {self.resume_grace}")
        for name in ("drain_grace", "drain_retry_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, not {getattr(self, name)}")

    def welcome_ice_mode(self) -> IceMode:
        return self.ice.ice_mode

    def welcome_ice_servers(self, peer_id: str, now: float) -> list[IceServerInfo]:
        """What one client puts in RTCConfiguration.iceServers (`now`: unix time)."""
        return self.ice.client_infos(peer_id, now)
