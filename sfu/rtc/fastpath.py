"""Hooks for forwarding at the RTP level, past aiortc's per-packet coroutines.

aiortc sends each RTP packet through an RTCRtpSender task that awaits a track, builds an
RtpPacket, serializes it and awaits three more coroutines down to `sendto`. A forwarding server
needs none of that per subscriber: it rewrites a 12-byte header, SRTP-protects and sends. These
hooks give sfu.publication / sfu.subscription what they need:

- `tap_rtp` / `tap_sender_reports`: see each packet (and SR) a receiver gets, before aiortc
  handles it (aiortc still does NACKs, REMB, RTCP and the encoded frames for MediaRelay).
- `RtpOutput`: protect and send one packet synchronously on a sender's transport.
- `IdleTrack`: a track for a forwarding sender that never yields a frame, so aiortc's RTP loop
  for that sender sleeps, while its RTCP (SR, SDES, BYE) and feedback handling stay.
- `on_retransmit_request`, `ssrc`, `negotiated_codec`, `prefer_codec`.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket, RtpPacket
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _srtp_lib

_srtp_protect = _srtp_lib.srtp_protect
_pack_header = struct.Struct("!BBHII").pack_into
_MAX_RTP = 1500 - 16 - 12  # pylibsrtp's buffer, less the largest SRTP trailer, less margin


def tap_rtp(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], None]) -> None:
    """Call `on_packet` with each RTP packet routed to the receiver, before aiortc sees it.

    `on_packet` may empty `packet.payload` (moving its size to `padding_size`, which keeps the
    bandwidth estimate right) to keep a packet away from aiortc's jitter buffer.
    """
    handle = receiver._handle_rtp_packet

    async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
        on_packet(packet)
        await handle(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]


def tap_sender_reports(receiver: RTCRtpReceiver, on_sr: Callable[[int, int], None]) -> None:
    """Call `on_sr(ntp_timestamp, rtp_timestamp)` for each sender report the remote sends."""
    handle = receiver._handle_rtcp_packet

    async def tapped(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            on_sr(packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
        await handle(packet)

    receiver._handle_rtcp_packet = tapped  # type: ignore[method-assign]


class RtpOutput:
    """Write, SRTP-protect and send RTP on a sender's transport, with no coroutine per packet.

    The header is packed straight into libsrtp's buffer and protected in place (pylibsrtp's own
    `protect()` allocates and copies twice more per call); the UDP send goes to the nominated
    ICE pair, cached until aioice nominates another pair or an ICE restart swaps the connection.
    """

    __slots__ = ("_addr", "_buf", "_cdata", "_conn", "_ctx", "_dtls", "_len", "_pair", "_sendto")

    def __init__(self, sender: RTCRtpSender) -> None:
        self._dtls = sender.transport
        self._ctx: Any = None
        self._conn: Any = None
        self._pair: Any = None
        self._sendto: Callable[[bytes, tuple[str, int]], None] | None = None
        self._addr: tuple[str, int] = ("", 0)

    def bind(self) -> bool:
        """Ready once DTLS is up (the SRTP keys exist)."""
        dtls = self._dtls
        srtp = getattr(dtls, "_tx_srtp", None)
        if dtls.state != "connected" or srtp is None:
            return False
        # One buffer per session, as pylibsrtp has: protect works in place, in its buffer.
        self._ctx = srtp._srtp[0]
        self._cdata = srtp._cdata
        self._buf = srtp._buffer
        self._len = _ffi.new("int *")
        return True

    def send(self, second_byte: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bool:
        """Send one RTP packet (no CSRCs, no extensions); False when the path is down."""
        pair = self._pair
        conn = self._dtls.transport._connection
        if conn is not self._conn or conn._nominated.get(1) is not pair:
            if not self._repair(conn):
                return False
            pair = self._pair
        ctx = self._ctx
        if ctx is None:
            return False
        buf = self._buf
        n = 12 + len(payload)
        if n > _MAX_RTP:
            return False
        _pack_header(buf, 0, 0x80, second_byte, seq, timestamp, ssrc)
        buf[12:n] = payload
        length = self._len
        length[0] = n
        if _srtp_protect(ctx, self._cdata, length):
            return False
        self._sendto(buf[0 : length[0]], self._addr)  # type: ignore[misc]
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        """Protect and send one compound RTCP packet (rare: pylibsrtp's own call will do)."""
        srtp = getattr(self._dtls, "_tx_srtp", None)
        conn = self._dtls.transport._connection
        if srtp is None or conn is None or conn._nominated.get(1) is None:
            return False
        pair = conn._nominated[1]
        pair.protocol.transport.sendto(srtp.protect_rtcp(packet), pair.remote_addr)
        return True

    def _repair(self, conn: Any) -> bool:
        # Looked up again when the pair changes: an ICE restart may replace the connection.
        self._conn = conn
        pair = conn._nominated.get(1) if conn is not None else None
        self._pair = pair
        if pair is None:
            self._sendto = None
            return False
        # StunProtocol.send_data is a coroutine around exactly this call (a TURN relay's
        # transport queues the data itself), so calling it directly is the same send.
        self._sendto = pair.protocol.transport.sendto
        self._addr = pair.remote_addr
        return True


class IdleTrack(MediaStreamTrack):
    """A track whose recv() waits until stop(): for senders fed by RtpOutput instead.

    aiortc's sender calls recv() once its connection is up and its codec negotiated: that first
    call is reported through `on_start`.
    """

    def __init__(self, kind: str, on_start: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._on_start: Callable[[], None] | None = on_start
        self._stopped = asyncio.get_running_loop().create_future()

    async def recv(self) -> Any:
        if self._on_start is not None:
            on_start, self._on_start = self._on_start, None
            on_start()
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._on_start = None
        if not self._stopped.done():
            self._stopped.set_result(None)


def on_retransmit_request(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Route the remote's NACKs (one call per lost sequence number) to `callback`."""

    async def retransmit(sequence_number: int) -> None:
        callback(sequence_number)

    sender._retransmit = retransmit  # type: ignore[method-assign]


def ssrc(sender: RTCRtpSender) -> int:
    value: int = sender._ssrc
    return value


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver sends or receives (the first negotiated one that is not RTX)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return next((c for c in codecs if not is_rtx(c)), None)


def rtx_payload_type(transceiver: RTCRtpTransceiver, payload_type: int) -> int | None:
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    for codec in codecs:
        if is_rtx(codec) and codec.parameters.get("apt") == payload_type:
            return codec.payloadType
    return None


def prefer_codec(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Offer only this codec (and its RTX) on a forwarding transceiver: the subscriber must
    receive what the publisher sends, since nothing is transcoded."""
    capabilities = RTCRtpSender.getCapabilities(transceiver.kind).codecs
    wanted = mime_type.lower()
    chosen = [c for c in capabilities if c.mimeType.lower() in (wanted, "video/rtx")]
    if not any(c.mimeType.lower() == wanted for c in chosen):
        raise ValueError(f"cannot forward {mime_type}: aiortc does not support it")
    transceiver.setCodecPreferences(chosen)
