"""Two aiortc peer connections connected to each other on 127.0.0.1, for the hook tests."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from sfu.peerconfig import rtc_configuration
from sfu.rtc.ice import set_ice_addresses


def new_pc() -> RTCPeerConnection:
    set_ice_addresses(["127.0.0.1"])
    return RTCPeerConnection(rtc_configuration([]))


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
