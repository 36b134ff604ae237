"""Hook: sfu.rtc.dtls (the SRTP profiles a server-side DTLS transport offers), on a real pair."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection

from sfu.media import TestPatternTrack
from sfu.rtc import dtls as rtc_dtls
from tests.rtc.pair import new_pc
from tests.util import eventually


def dtls_of(pc: RTCPeerConnection) -> object:
    return pc.getTransceivers()[0].receiver.transport


async def handshake(hooked: str | None) -> list[str | None]:
    """Connect an offerer and an answerer, the hook on one of them (or neither); returns the
    profile each side ended up with."""
    offerer, answerer = new_pc(), new_pc()
    offerer.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    try:
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        # As sfu.participant does: right after the remote description, before any handshake.
        if hooked == "offerer":
            rtc_dtls.prefer_aes_128_gcm(dtls_of(offerer))  # type: ignore[arg-type]
        elif hooked == "answerer":
            rtc_dtls.prefer_aes_128_gcm(dtls_of(answerer))  # type: ignore[arg-type]
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)
        pcs = (offerer, answerer)
        await eventually(
            lambda: "" if all(pc.connectionState == "connected" for pc in pcs) else "connecting",
            timeout=10,
        )
        return [rtc_dtls.selected_profile(dtls_of(pc)) for pc in pcs]  # type: ignore[arg-type]
    finally:
        await offerer.close()
        await answerer.close()


async def test_aiortc_alone_picks_aes_256_gcm() -> None:
    assert await handshake(None) == ["SRTP_AEAD_AES_256_GCM"] * 2


@pytest.mark.parametrize("side", ["offerer", "answerer"])  # the DTLS server, then the client
async def test_the_hooked_side_gets_aes_128_gcm_in_either_dtls_role(side: str) -> None:
    assert await handshake(side) == ["SRTP_AEAD_AES_128_GCM"] * 2


def test_the_offer_keeps_a_profile_for_peers_without_gcm() -> None:
    names = [p.openssl_profile for p in rtc_dtls.SERVER_PROFILES]
    assert names == [b"SRTP_AEAD_AES_128_GCM", b"SRTP_AES128_CM_SHA1_80"]
