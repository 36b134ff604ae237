"""How a server-side DTLS transport negotiates: its SRTP protection profiles and its cipher suites.

SRTP profiles. aiortc offers AEAD_AES_256_GCM, AEAD_AES_128_GCM and AES128_CM_SHA1_80, in that
order, and browsers pick AES-256-GCM first. A forwarding server protects every packet once per
subscriber: with AES-128-GCM libsrtp spends about a third less time per packet (1.0 against
1.5 µs for 1,200 bytes, measured here), at a strength WebRTC deems enough. Pion, so LiveKit,
offers only AEAD_AES_128_GCM and AES128_CM_SHA1_80: so do we. The list is the DTLS client's offer
and the DTLS server's preference (OpenSSL picks the server's first that the client offers), so
leaving AES-256 out gets AES-128-GCM whichever side the server is, with CM-SHA1 for older peers.

Cipher suites. aiortc's certificate is ECDSA and its SSL context allows only ECDHE-ECDSA suites,
which is all a DTLS *server* with that certificate can use, but as a DTLS *client* it then
refuses every peer whose certificate is RSA ("no shared cipher"): GStreamer's webrtcbin (1.22),
older libwebrtc and others. The server is the DTLS client whenever it answers a client offer
(`a=setup:active`, what JSEP recommends and browsers, pion and Janus do), so it also offers the
ECDHE-RSA suites. Answering `a=setup:passive` instead would have fixed only that one role: a
client offering `setup:active` or `passive` would still meet the server as a DTLS client.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCDtlsTransport
from aiortc.rtcdtlstransport import SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80, SRTP_PROFILES

SERVER_PROFILES = [p for p in SRTP_PROFILES if p in (SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80)]

# aiortc's four ECDSA suites, in its order, then the same four for an RSA peer certificate.
CIPHERS = b":".join(
    f"ECDHE-{auth}-{cipher}".encode()
    for auth in ("ECDSA", "RSA")
    for cipher in ("AES128-GCM-SHA256", "CHACHA20-POLY1305", "AES128-SHA", "AES256-SHA")
)


def prefer_aes_128_gcm(dtls: RTCDtlsTransport) -> None:
    """Offer AEAD_AES_128_GCM, then AES128_CM_SHA1_80; call before the handshake starts."""
    dtls._srtp_profiles = SERVER_PROFILES


def accept_rsa_peers(dtls: RTCDtlsTransport) -> None:
    """Offer the ECDHE-RSA suites too, as a DTLS client; call before the handshake starts."""
    certificate: Any = dtls._RTCDtlsTransport__local_certificate  # type: ignore[attr-defined]
    if "_create_ssl_context" in vars(certificate):
        return  # done: one certificate serves every transport of a peer connection
    create = type(certificate)._create_ssl_context

    def create_ssl_context(srtp_profiles: list[Any]) -> Any:
        context = create(certificate, srtp_profiles)
        context.set_cipher_list(CIPHERS)
        return context

    certificate._create_ssl_context = create_ssl_context


def selected_profile(dtls: RTCDtlsTransport) -> str | None:
    """The profile the handshake chose (OpenSSL's name), once connected."""
    ssl = dtls._ssl
    if ssl is None or dtls.state != "connected":
        return None
    name: bytes | None = ssl.get_selected_srtp_profile()
    return name.decode() if name else None


def selected_cipher(dtls: RTCDtlsTransport) -> str | None:
    """The cipher suite the handshake chose (OpenSSL's name), once connected."""
    ssl = dtls._ssl
    if ssl is None or dtls.state != "connected":
        return None
    name: str | None = ssl.get_cipher_name()
    return name
