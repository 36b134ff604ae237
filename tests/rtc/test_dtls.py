"""Hooks: sfu.rtc.dtls (the SRTP profiles and cipher suites of a server-side DTLS transport), on
real pairs, in both DTLS roles, against a peer with an ECDSA certificate (aiortc, browsers) and
one with an RSA certificate (as GStreamer's webrtcbin 1.22 has)."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCPeerConnection

from sfu.media import TestPatternTrack
from sfu.rtc import dtls as rtc_dtls
from sfu.rtc import probe
from tests.rtc.pair import new_pc
from tests.util import eventually


def rsa_pc() -> RTCPeerConnection:
    """A peer that is not aiortc: an RSA certificate and OpenSSL's own choice of suites."""
    pc = new_pc()
    probe.use_rsa_certificate(pc)
    return pc


def dtls_of(pc: RTCPeerConnection) -> Any:
    return pc.getTransceivers()[0].receiver.transport


async def handshake(hooked: str | None, rsa_side: str | None = None) -> list[tuple[Any, ...]]:
    """Connect an offerer (the DTLS server: aiortc answers `setup:active`) and an answerer (the
    DTLS client), the hooks on one of them (or neither), an RSA certificate on one of them (or
    neither); returns each side's (state, SRTP profile, cipher suite)."""
    offerer = rsa_pc() if rsa_side == "offerer" else new_pc()
    answerer = rsa_pc() if rsa_side == "answerer" else new_pc()
    offerer.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    pcs = (offerer, answerer)
    try:
        await offerer.setLocalDescription(await offerer.createOffer())
        await answerer.setRemoteDescription(offerer.localDescription)
        # As sfu.participant does: right after the remote description, before any handshake.
        if hooked is not None:
            dtls = dtls_of(offerer if hooked == "offerer" else answerer)
            rtc_dtls.prefer_aes_128_gcm(dtls)
            rtc_dtls.accept_rsa_peers(dtls)
        await answerer.setLocalDescription(await answerer.createAnswer())
        await offerer.setRemoteDescription(answerer.localDescription)

        def settled() -> str:
            states = [dtls_of(pc).state for pc in pcs]
            return "" if all(s in ("connected", "failed") for s in states) else f"DTLS {states}"

        await eventually(settled, timeout=10)
        return [
            (
                dtls_of(pc).state,
                rtc_dtls.selected_profile(dtls_of(pc)),
                rtc_dtls.selected_cipher(dtls_of(pc)),
            )
            for pc in pcs
        ]
    finally:
        await offerer.close()
        await answerer.close()


async def test_aiortc_alone_picks_aes_256_gcm() -> None:
    both = ("connected", "SRTP_AEAD_AES_256_GCM", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert await handshake(None) == [both, both]


async def test_aiortc_alone_as_dtls_client_refuses_an_rsa_server() -> None:
    """Why accept_rsa_peers exists: if aiortc ever offers RSA suites itself, it can go."""
    states = [state for state, _, _ in await handshake(None, rsa_side="offerer")]
    assert states == ["failed", "failed"]


@pytest.mark.parametrize("peer_certificate", ["ecdsa", "rsa"])
@pytest.mark.parametrize("side", ["offerer", "answerer"])  # the DTLS server, then the client
async def test_the_hooked_side_connects_with_aes_128_gcm_in_either_role(
    side: str, peer_certificate: str
) -> None:
    peer = "answerer" if side == "offerer" else "offerer"
    rsa_side = peer if peer_certificate == "rsa" else None
    sides = await handshake(side, rsa_side=rsa_side)
    assert [state[:2] for state in sides] == [("connected", "SRTP_AEAD_AES_128_GCM")] * 2
    # The DTLS server's certificate decides the suite (its order, the client's preference).
    auth = "RSA" if rsa_side == "offerer" else "ECDSA"
    assert sides[0][2] == sides[1][2] and sides[0][2].startswith(f"ECDHE-{auth}-"), sides


def test_the_offer_keeps_a_profile_for_peers_without_gcm() -> None:
    names = [p.openssl_profile for p in rtc_dtls.SERVER_PROFILES]
    assert names == [b"SRTP_AEAD_AES_128_GCM", b"SRTP_AES128_CM_SHA1_80"]
