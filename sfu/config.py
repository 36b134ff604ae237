"""Media-plane settings, filled by the entry point from flags and environment variables."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from signaling.ice import IceConfig, IceConfigError
from signaling.limits import Limits

DEFAULT_MAX_BITRATE = 2_500_000


@dataclass(slots=True)
class SfuConfig:
    # Local addresses ICE gathers host candidates on (None: every interface but loopback).
    ice_addresses: list[str] | None = None
    # UDP ports host candidates bind (None: ephemeral ports), for a firewall that opens those.
    ice_port_range: tuple[int, int] | None = None
    # Behind 1:1 NAT: local address -> the public one host candidates announce ("" as the key:
    # every local address of that IP version), as Janus's nat_1_1_mapping.
    ice_announced: dict[str, str] = field(default_factory=dict)
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


def parse_port_range(text: str) -> tuple[int, int]:
    """ICE_PORT_RANGE: "50000-50100"."""
    first, dash, last = text.strip().partition("-")
    try:
        ports = (int(first), int(last))
    except ValueError:
        ports = (0, 0)
    if not dash or not 1024 <= ports[0] <= ports[1] <= 65535:
        raise IceConfigError(
            f"ICE_PORT_RANGE must be FIRST-LAST, UDP ports from 1024 to 65535, not {text!r}"
        )
    return ports


def parse_announced(text: str) -> dict[str, str]:
    """ICE_ANNOUNCED_ADDRESS: "203.0.113.7" (for every local address of its IP version), or
    "10.0.0.5=203.0.113.7,..." (per local address)."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        local, _, public = item.rpartition("=")
        try:
            public_ip = ipaddress.ip_address(public)
            if local and ipaddress.ip_address(local).version != public_ip.version:
                raise ValueError(f"{local} and {public} are not of one IP version")
        except ValueError as exc:
            raise IceConfigError(
                f"ICE_ANNOUNCED_ADDRESS must be a public IP, or LOCAL=PUBLIC pairs: {exc}"
            ) from None
        mapping[local] = public
    return mapping


def parse_addresses(text: str) -> list[str]:
    """ICE_ADDRESSES: comma-separated local IPs."""
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise IceConfigError(f"ICE_ADDRESSES: {address!r} is not an IP address") from None
    return addresses
