"""sfu.rtc.audiolevel: the audio-level extension's id, as an aiortc answer negotiates it."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from sfu.rtc.audiolevel import URI, audio_level_id
from sfu.sdpcheck import check_description

# aiortc would otherwise gather from Google's STUN server.
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


async def test_the_publishers_id_is_kept_and_found() -> None:
    client, server = RTCPeerConnection(NO_ICE_SERVERS), RTCPeerConnection(NO_ICE_SERVERS)
    try:
        client.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        # A browser numbers it its own way: 7 here, where aiortc would say 2.
        offer = client.localDescription.sdp.replace(f"a=extmap:2 {URI}", f"a=extmap:7 {URI}")
        assert f"a=extmap:7 {URI}" in offer
        assert audio_level_id(server) is None
        await server.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await server.setLocalDescription(await server.createAnswer())
        assert audio_level_id(server) == 7
        answer = check_description(server.localDescription.sdp, "answer", [])
        assert any(e.uri == URI and e.id == 7 for e in answer.media[0].rtp.headerExtensions)
    finally:
        await client.close()
        await server.close()
