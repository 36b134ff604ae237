"""Hook: sfu.rtc.candidates reads the selected pair's candidate types and addresses from aioice."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import candidate_from_sdp

from sfu.peerconfig import rtc_configuration
from sfu.rtc.candidates import (
    PairTypes,
    add_remote_candidate,
    selected_pair_addresses,
    selected_pair_types,
)
from sfu.rtc.datachannel import bundle_data_channels
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


async def test_a_loopback_connection_selects_a_host_pair() -> None:
    offerer, answerer = new_pc(), new_pc()
    try:
        offerer.addTrack(AudioStreamTrack())
        assert selected_pair_types(offerer) is None, "no ICE transport yet"
        await negotiate(offerer, answerer)

        def connected() -> str:
            states = (offerer.iceConnectionState, answerer.iceConnectionState)
            return "" if states == ("completed", "completed") else f"ICE states {states}"

        await eventually(connected, timeout=10)
        assert selected_pair_types(offerer) == PairTypes("host", "host")
        assert selected_pair_types(answerer) == PairTypes("host", "host")
        mine, theirs = selected_pair_addresses(offerer), selected_pair_addresses(answerer)
        assert mine is not None and theirs is not None
        assert (mine.local, mine.remote) == (theirs.remote, theirs.local)
        assert mine.local[0] == "127.0.0.1" and mine.local[1] > 0
    finally:
        await asyncio.gather(offerer.close(), answerer.close())
    assert selected_pair_types(offerer) is None, "aioice forgets the pair on close"
    assert selected_pair_addresses(offerer) is None


@pytest.mark.parametrize("hooked", [True, False])
async def test_a_candidate_for_a_first_data_channels_line_reaches_the_ice_transport(
    hooked: bool,
) -> None:
    # Chromium's shape: its channels are made before its tracks, so its offer's first m-line
    # (the bundle's) is the data channels'; the server marks that m-line bundled
    # (sfu.rtc.datachannel), and a candidate naming it must still reach the one ICE transport.
    server = new_pc()
    # Its data channels' m-line first, as Chromium's (aiortc puts it after the tracks').
    configuration = rtc_configuration([])
    configuration.alwaysNegotiateDataChannels = True
    page = RTCPeerConnection(configuration)
    try:
        page.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await page.setLocalDescription(await page.createOffer())
        # Trickled, as a browser's: its candidates are not all in the offer.
        sdp = page.localDescription.sdp.replace("a=end-of-candidates\r\n", "")
        await server.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        bundle_data_channels(server)
        assert server.sctp is not None and server.sctp.mid == "0"
        candidate = candidate_from_sdp("candidate:1 1 udp 2122260223 127.0.0.1 9999 typ host")
        candidate.sdpMid, candidate.sdpMLineIndex = "0", 0
        if hooked:
            await add_remote_candidate(server, candidate)
        else:
            await server.addIceCandidate(candidate)
        ice = server.sctp.transport.transport
        ports = [c.port for c in ice.getRemoteCandidates()]
        assert (9999 in ports) is hooked, ports  # aiortc alone gives it to no transport
        assert all(t.receiver.transport.transport is ice for t in server.getTransceivers())
    finally:
        await page.close()
        await server.close()
