"""Give a running peer connection new ICE servers (fresh TURN credentials) for its next gathering.

aiortc takes its configuration once, at construction: there is no setConfiguration. An ICE
restart (or any new ICE transport) gathers with what the peer connection holds, so we replace
that, and the TURN and STUN settings of each current aioice connection, which an in-place
restart builds its next connection from. The running allocation is untouched: the TURN server
checks credentials when an allocation is made, and keeps refreshing one made in time.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcicetransport import connection_kwargs

# aioice.Connection's attributes for its servers, with the values meaning "none".
_SERVER_ATTRIBUTES = {
    "stun_server": None,
    "turn_server": None,
    "turn_username": None,
    "turn_password": None,
    "turn_ssl": False,
    "turn_transport": "udp",
}


def set_ice_servers(pc: RTCPeerConnection, configuration: RTCConfiguration) -> None:
    pc._RTCPeerConnection__configuration = configuration  # type: ignore[attr-defined]
    servers = connection_kwargs(configuration.iceServers or [])
    transports: set[Any] = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    for transport in list(transports):
        conn: Any = transport.iceGatherer._connection
        for name, default in _SERVER_ATTRIBUTES.items():
            setattr(conn, name, servers.get(name, default))


def ice_servers(pc: RTCPeerConnection) -> RTCConfiguration:
    """The configuration the next gathering uses."""
    configuration: RTCConfiguration = pc._RTCPeerConnection__configuration  # type: ignore[attr-defined]
    return configuration
