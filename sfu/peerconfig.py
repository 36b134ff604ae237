"""RTCConfiguration for every aiosfu peer connection, server and clients alike."""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from signaling.backend import IceServer
from signaling.protocol import ICE_MODES

from .rtc import consent


def rtc_configuration(ice_servers: Sequence[IceServer], ice_mode: str = "all") -> RTCConfiguration:
    """Explicit ICE servers always: aiortc falls back to Google's STUN server when given none.

    Max-bundle on every connection: with aiortc's default policy a second m-line of one kind can
    stay on a transport that is then stopped, and nothing arrives on it.
    """
    if ice_mode not in ICE_MODES:
        raise ValueError(f"ICE mode must be one of {', '.join(ICE_MODES)}, not {ice_mode!r}")
    consent.install()
    servers = [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers
        if ice_mode != "stun-only" or all(u.startswith("stun") for u in s.urls)
    ]
    return RTCConfiguration(
        iceServers=servers,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
        iceTransportPolicy=(
            RTCIceTransportPolicy.RELAY if ice_mode == "turn-only" else RTCIceTransportPolicy.ALL
        ),
    )
