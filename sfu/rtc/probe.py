"""What tests and tools reach inside aiortc and aioice for: to send by hand, to watch what passes,
and to imitate a peer that is not aiortc. Nothing in the server calls these.

They live here, not in the tests, so that an upgrade of aiortc or aioice breaks in one place
(tests/test_layers.py holds every other module to that). Each is used by a test in tests/rtc/,
which is its test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aioice import Connection
from aiortc import RTCDtlsTransport, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa

# --- RTP and RTCP by hand -------------------------------------------------------------------------


async def send_rtp(dtls: RTCDtlsTransport, data: bytes) -> None:
    """Protect and send one RTP or RTCP packet as aiortc's own senders do."""
    await dtls._send_rtp(data)


async def send_nack(receiver: RTCRtpReceiver, media_ssrc: int, lost: list[int]) -> None:
    """The receiver's own generic NACK for these sequence numbers."""
    await receiver._send_rtcp_nack(media_ssrc, lost)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    await receiver._send_rtcp_pli(media_ssrc)


# --- watching what passes ----------------------------------------------------------------------


def tap_sent_rtp(dtls: RTCDtlsTransport, seen: Callable[[bytes], None]) -> None:
    """Call `seen` with each packet aiortc sends on this transport, before it is protected."""
    send = dtls._send_rtp

    async def tapped(data: bytes) -> None:
        seen(data)
        await send(data)

    dtls._send_rtp = tapped  # type: ignore[method-assign]


def tap_received_rtcp(dtls: RTCDtlsTransport, seen: Callable[[bytes], None]) -> None:
    """Call `seen` with each decrypted RTCP compound this transport hands to aiortc."""
    handle: Callable[[bytes], Awaitable[None]] = dtls._handle_rtcp_data

    async def tapped(data: bytes) -> None:
        seen(data)
        await handle(data)

    dtls._handle_rtcp_data = tapped  # type: ignore[method-assign]


def tap_sender_rtcp(sender: RTCRtpSender, seen: Callable[[Any], None]) -> None:
    """Call `seen` with each parsed RTCP packet aiortc routes to this sender."""
    handle: Callable[[Any], Awaitable[None]] = sender._handle_rtcp_packet

    async def tapped(packet: Any) -> None:
        seen(packet)
        await handle(packet)

    sender._handle_rtcp_packet = tapped  # type: ignore[method-assign]


def tap_connect(pc: RTCPeerConnection, seen: Callable[[], None]) -> None:
    """Call `seen` each time the connection's private connect task runs (each description set
    starts one; sfu.rtc.datachannel one more), before it does its work."""
    connect: Callable[[], Awaitable[None]] = pc._RTCPeerConnection__connect  # type: ignore[attr-defined]

    async def spy() -> None:
        seen()
        await connect()

    pc._RTCPeerConnection__connect = spy  # type: ignore[attr-defined]


# --- ICE ----------------------------------------------------------------------------------------


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice connection under a DTLS transport."""
    connection: Connection = dtls.transport._connection
    return connection


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connection of each of a peer connection's ICE transports (one, bundled)."""
    transports: set[Any] = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    return [transport._connection for transport in transports]


def sockets(connection: Connection) -> list[Any]:
    """The datagram protocols (one per local candidate's socket) an aioice connection reads:
    their `datagram_received` and `send_stun` are where tests drop or hold datagrams."""
    protocols: list[Any] = connection._protocols
    return protocols


def nominated(connection: Connection) -> bool:
    """Whether ICE has nominated a pair on this connection."""
    return bool(connection._nominated)


def nominated_address(connection: Connection) -> tuple[str, int]:
    """The local address of the pair ICE nominated (component 1): where datagrams come in."""
    candidate = connection._nominated[1].local_candidate
    return candidate.host, candidate.port


def gathering_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice connection whose credentials and candidates our next description carries
    (another than ice_connection() while an ICE restart is under way: sfu.rtc.icerestart)."""
    connection: Connection = dtls.transport.iceGatherer._connection
    return connection


def consent_checked(connection: Connection) -> bool:
    """Whether the connection's consent freshness checks (RFC 7675) are running."""
    task = connection._query_consent_task
    return task is not None and not task.done()


def srtp_sessions(dtls: RTCDtlsTransport) -> tuple[Any, Any]:
    """The (receive, send) SRTP sessions DTLS keyed: the same objects as long as no new DTLS
    handshake took place."""
    return dtls._rx_srtp, dtls._tx_srtp


# --- a peer that is not aiortc ---------------------------------------------------------------


class RsaCertificate(RTCCertificate):
    """An RSA certificate and OpenSSL's own choice of cipher suites, as GStreamer's webrtcbin
    1.22 has (aiortc uses ECDSA and pins its suites)."""

    @classmethod
    def generate(cls) -> RsaCertificate:
        key: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))

    def _create_ssl_context(self, srtp_profiles: list[Any]) -> Any:
        context = super()._create_ssl_context(srtp_profiles)
        context.set_cipher_list(b"HIGH:!aNULL")
        return context


def use_rsa_certificate(pc: RTCPeerConnection) -> None:
    """Make a fresh peer connection's DTLS look like webrtcbin's (before any description)."""
    pc._RTCPeerConnection__certificates = [RsaCertificate.generate()]  # type: ignore[attr-defined]
