"""Hooks for forwarding at the RTP level, past aiortc's per-packet coroutines.

aiortc sends each RTP packet through an RTCRtpSender task that awaits a track, builds an
RtpPacket, serializes it and awaits three more coroutines down to `sendto`. A forwarding server
needs none of that per subscriber: it rewrites a 12-byte header, SRTP-protects and sends. These
hooks give sfu.publication / sfu.subscription what they need:

- `tap_rtp` / `tap_sender_reports`: see each packet (and SR) a receiver gets, before aiortc
  handles it (aiortc still does NACKs, REMB, RTCP and the encoded frames for MediaRelay).
- `RtpOutput`: protect and send one packet synchronously on a sender's transport (rewriting
  the VP8 picture numbering too, for simulcast: `forward_vp8`);
  `send_rtcp`: the same for a compound RTCP packet.
- `IdleTrack`: a track for a forwarding sender that never yields a frame, so aiortc's RTP loop
  for that sender sleeps, while its RTCP (SR, SDES, BYE) and feedback handling stay.
- `on_retransmit_request`, `ssrc`, `negotiated_codec`, `prefer_codec`.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any

from aioice.ice import StunProtocol
from aioice.turn import TurnClientUdpProtocol, TurnTransport
from aiortc import (
    MediaStreamTrack,
    RTCDtlsTransport,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtcpSrPacket, RtpPacket
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _srtp_lib

_srtp_protect = _srtp_lib.srtp_protect
_srtp_protect_rtcp = _srtp_lib.srtp_protect_rtcp
_pack_header = struct.Struct("!BBHII").pack_into
_CHANNEL_HEADER = struct.Struct("!HH").pack
# The same, then a one-byte-header extension block holding one element (abs-send-time).
_pack_timed_header = struct.Struct("!BBHIIHHI").pack_into
_pack_u16 = struct.Struct("!H").pack_into
_pack_u8 = struct.Struct("!B").pack_into
_MAX_RTP = 1500 - 16 - 12  # pylibsrtp's buffer, less the largest SRTP trailer, less margin
_MAX_PAYLOAD = _MAX_RTP - 20  # after our largest header (with abs-send-time)
ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
# The abs-send-time of the packets going out now (24 bits: seconds in 6.18 fixed point), set
# once per received packet before its fan-out (`stamp_send_time`): a clock read per forwarded
# packet would cost more than the rest of the extension. Retransmissions carry the latest
# stamp, older than they are, which receivers' estimators take for reordering and skip.
_SEND_TIME = [0]


def stamp_send_time(now: float) -> None:
    """The packets forwarded next leave at about `now` (time.monotonic())."""
    _SEND_TIME[0] = int(now * 262144) & 0xFFFFFF


def tap_rtp(receiver: RTCRtpReceiver, on_packet: Callable[[RtpPacket], bool]) -> None:
    """Call `on_packet` with each RTP packet routed to the receiver, before aiortc sees it.

    When `on_packet` returns True the packet is consumed: aiortc's receiver never sees it.
    Otherwise it may empty `packet.payload` (moving its size to `padding_size`, which keeps the
    bandwidth estimate right) to keep a packet away from aiortc's jitter buffer.
    """
    handle = receiver._handle_rtp_packet

    async def tapped(packet: RtpPacket, arrival_time_ms: int) -> None:
        if not on_packet(packet):
            await handle(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = tapped  # type: ignore[method-assign]


def tap_sender_reports(receiver: RTCRtpReceiver, on_sr: Callable[[int, int, int], None]) -> None:
    """Call `on_sr(ssrc, ntp_timestamp, rtp_timestamp)` for each sender report the remote sends
    (one per SSRC: a simulcast publisher reports each layer's clock)."""
    handle = receiver._handle_rtcp_packet

    async def tapped(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            on_sr(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await handle(packet)

    receiver._handle_rtcp_packet = tapped  # type: ignore[method-assign]


def send_rtcp(dtls: RTCDtlsTransport, packet: bytes) -> bool:
    """Protect and send one compound RTCP packet now, on the nominated pair; False when down."""
    srtp = getattr(dtls, "_tx_srtp", None)
    conn = dtls.transport._connection
    if srtp is None or conn is None or conn._nominated.get(1) is None:
        return False
    pair = conn._nominated[1]
    pair.protocol.transport.sendto(srtp.protect_rtcp(packet), pair.remote_addr)
    return True


# One scratch buffer for every output: libsrtp protects wherever it is told to, and the packets
# of one fan-out go out one after the other, so this stays in the cache where a buffer per
# subscriber (pylibsrtp's own) would be another 1.5 KB to bring in for each.
_SCRATCH = _ffi.new("char[]", 1500)
_SCRATCH_BUFFER = _ffi.buffer(_SCRATCH)
_SCRATCH_LEN = _ffi.new("int *")


class RtpOutput:
    """Rewrite, SRTP-protect and send one stream's RTP on a sender's transport, with no coroutine
    per packet.

    `forward()` is the forwarding hot path: the header is rewritten into the stream's own SSRC,
    payload type and numbering (the source's, shifted by fixed offsets), packed into a scratch
    buffer with the payload and protected there, in place (pylibsrtp's own `protect()`
    allocates and copies twice more per call). The UDP send goes to the ICE pair nominated when
    `refresh()` last looked (the caller looks a few times a second: aioice may nominate another
    pair, an ICE restart may swap the connection). On a plain UDP pair it goes through a
    duplicate of that pair's socket: the event loop's transport would check its state, convert
    the address and look for a write buffer on every call, and a datagram socket that cannot
    take one more packet drops it either way. On a pair relayed through a UDP TURN allocation
    (ICE_MODE=turn-only) it goes as ChannelData on a duplicate of the socket to the TURN server,
    once aioice has bound the channel: aioice's own TurnTransport.sendto starts a task per
    packet. Its consent checks, which still go through aioice, keep the channel refreshed.
    """

    __slots__ = (
        "_abs_send_time",
        "_addr",
        "_conn",
        "_ctx",
        "_dtls",
        "_ice",
        "_pair",
        "_pending",
        "_rtx",
        "_rtx_seq",
        "_sendto",
        "_sock",
        "bytes",
        "marker_pt",
        "packets",
        "picture_id_offset",
        "seq_offset",
        "ssrc",
        "tl0_offset",
        "ts_offset",
    )

    def __init__(
        self, sender: RTCRtpSender, payload_type: int = 0, abs_send_time_id: int | None = None
    ) -> None:
        self._dtls = sender.transport
        # The extension element's first byte (ID, length 3 less one), shifted in place: the
        # subscriber's receive-side bandwidth estimator reads the time we sent each packet.
        self._abs_send_time = (abs_send_time_id << 4 | 2) << 24 if abs_send_time_id else 0
        self._rtx: tuple[int, int] | None = None  # (payload type, SSRC) of our RTX stream
        self._rtx_seq = random.randrange(1 << 15)
        self._ice: Any = self._dtls.transport  # a property on the DTLS transport: read it once
        self._ctx: Any = None
        self._conn: Any = None
        self._pair: Any = None
        self._pending = False  # a TURN pair still sent through aioice: look again on refresh
        self._sendto: Callable[[bytes, tuple[str, int]], Any] | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._sock: socket.socket | None = None
        self.ssrc: int = sender._ssrc
        self.marker_pt = (payload_type, 0x80 | payload_type)  # second header byte, by marker
        self.seq_offset = 0
        self.ts_offset = 0
        self.picture_id_offset = 0  # VP8, forward_vp8() only
        self.tl0_offset = 0
        self.packets = 0  # RTP packets sent
        self.bytes = 0  # their payload bytes

    def bind(self) -> bool:
        """Ready once DTLS is up (the SRTP keys exist). ICE has nominated a pair by then; were
        it not so, packets would be refused until a refresh() found one."""
        dtls = self._dtls
        srtp = getattr(dtls, "_tx_srtp", None)
        if dtls.state != "connected" or srtp is None:
            return False
        self._ctx = srtp._srtp[0]
        self.refresh()
        return True

    def refresh(self) -> bool:
        """Follow the nominated pair, if it changed; False when there is none."""
        conn = self._ice._connection
        if (
            conn is self._conn
            and conn._nominated.get(1) is self._pair is not None
            and not self._pending
        ):
            return True
        return self._repair(conn)

    def forward(self, seq: int, timestamp: int, marker: int, payload: bytes) -> bool:
        """Send one packet of the source (its numbering; no CSRCs; our abs-send-time, when the
        subscriber negotiated it, as the only header extension).

        False when it could not go: not bound, or too large, or the socket refused it.
        """
        sendto = self._sendto
        n = len(payload)
        if sendto is None or n > _MAX_PAYLOAD:
            return False
        word = self._abs_send_time
        if word:
            _pack_timed_header(
                _SCRATCH_BUFFER,
                0,
                0x90,
                self.marker_pt[marker],
                (seq + self.seq_offset) & 0xFFFF,
                (timestamp + self.ts_offset) & 0xFFFFFFFF,
                self.ssrc,
                0xBEDE,
                1,
                word | _SEND_TIME[0],
            )
            n += 20
            _SCRATCH_BUFFER[20:n] = payload
        else:
            _pack_header(
                _SCRATCH_BUFFER,
                0,
                0x80,
                self.marker_pt[marker],
                (seq + self.seq_offset) & 0xFFFF,
                (timestamp + self.ts_offset) & 0xFFFFFFFF,
                self.ssrc,
            )
            n += 12
            _SCRATCH_BUFFER[12:n] = payload
        _SCRATCH_LEN[0] = n
        if _srtp_protect(self._ctx, _SCRATCH, _SCRATCH_LEN):
            return False
        try:
            sendto(_SCRATCH_BUFFER[0 : _SCRATCH_LEN[0]], self._addr)
        except OSError:
            return False  # e.g. the socket buffer is full (EAGAIN): a lost packet, as in UDP
        self.packets += 1
        self.bytes += len(payload)
        return True

    def forward_vp8(self, seq: int, timestamp: int, marker: int, payload: bytes) -> bool:
        """forward(), also shifting the VP8 payload descriptor's PictureID and TL0PICIDX by
        their offsets (in place, keeping the source's 7 or 15-bit width): what a subscription
        to a simulcast publication sends, since each layer numbers its pictures its own way."""
        size = len(payload)
        if self._sendto is None or size > _MAX_PAYLOAD:
            return False
        # The header is written as in forward(), inlined: a shared method costs a call per packet.
        buf = _SCRATCH_BUFFER
        word = self._abs_send_time
        if word:
            _pack_timed_header(
                buf,
                0,
                0x90,
                self.marker_pt[marker],
                (seq + self.seq_offset) & 0xFFFF,
                (timestamp + self.ts_offset) & 0xFFFFFFFF,
                self.ssrc,
                0xBEDE,
                1,
                word | _SEND_TIME[0],
            )
            h = 20
        else:
            _pack_header(
                buf,
                0,
                0x80,
                self.marker_pt[marker],
                (seq + self.seq_offset) & 0xFFFF,
                (timestamp + self.ts_offset) & 0xFFFFFFFF,
                self.ssrc,
            )
            h = 12
        n = h + size
        buf[h:n] = payload
        if size > 2 and payload[0] & 0x80:  # X: an extension byte, then I (PictureID), L...
            ext = payload[1]
            pos = 2  # in the payload
            if ext & 0x80:
                first = payload[2]
                if first & 0x80:
                    if size > 3:
                        picture_id = ((first & 0x7F) << 8 | payload[3]) + self.picture_id_offset
                        _pack_u16(buf, h + 2, 0x8000 | picture_id & 0x7FFF)
                    pos = 4
                else:
                    _pack_u8(buf, h + 2, (first + self.picture_id_offset) & 0x7F)
                    pos = 3
            if ext & 0x40 and pos < size:
                _pack_u8(buf, h + pos, (payload[pos] + self.tl0_offset) & 0xFF)
        return self._send_scratch(n, size)

    def _send_scratch(self, n: int, size: int) -> bool:
        # The tail of forward(), which keeps its own inline copy: one call less per packet.
        _SCRATCH_LEN[0] = n
        if _srtp_protect(self._ctx, _SCRATCH, _SCRATCH_LEN) or self._sendto is None:
            return False
        try:
            self._sendto(_SCRATCH_BUFFER[0 : _SCRATCH_LEN[0]], self._addr)
        except OSError:
            return False
        self.packets += 1
        self.bytes += size
        return True

    def use_rtx(self, payload_type: int, ssrc: int) -> None:
        """Our RTX stream (RFC 4588), as negotiated: `resend()` sends on it."""
        self._rtx = (payload_type, ssrc)

    def resend(self, seq: int, timestamp: int, marker: int, payload: bytes) -> bool:
        """Send a packet of the source again on our RTX stream (its own SSRC and numbering, the
        original sequence number first in the payload): padding that probes the subscriber's
        downlink. The receiver drops it as a duplicate once unwrapped, after its bandwidth
        estimator counted it, and its receiver reports about the media stream stay true (a
        duplicate on the media SSRC would hide a loss there). Not on the hot path."""
        rtx = self._rtx
        size = len(payload) + 2
        if rtx is None or self._sendto is None or size > _MAX_PAYLOAD:
            return False
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        header = [0x80, rtx[0] | marker << 7, self._rtx_seq, (timestamp + self.ts_offset)]
        header[3] &= 0xFFFFFFFF
        if self._abs_send_time:
            header[0] |= 0x10
            _pack_timed_header(
                _SCRATCH_BUFFER,
                0,
                *header,
                rtx[1],
                0xBEDE,
                1,
                self._abs_send_time | (int(_monotonic() * 262144) & 0xFFFFFF),
            )
            h = 20
        else:
            _pack_header(_SCRATCH_BUFFER, 0, *header, rtx[1])
            h = 12
        _pack_u16(_SCRATCH_BUFFER, h, (seq + self.seq_offset) & 0xFFFF)
        _SCRATCH_BUFFER[h + 2 : h + size] = payload
        _SCRATCH_LEN[0] = h + size
        if _srtp_protect(self._ctx, _SCRATCH, _SCRATCH_LEN):
            return False
        try:
            self._sendto(_SCRATCH_BUFFER[0 : _SCRATCH_LEN[0]], self._addr)
        except OSError:
            return False
        return True  # not counted: the sender reports are about the media stream

    def send_rtcp(self, packet: bytes) -> bool:
        """Protect and send one compound RTCP packet (a sender report, once a second per
        subscriber: in place and on the same socket too, which is half the cost)."""
        sendto = self._sendto
        n = len(packet)
        if sendto is None or n > _MAX_RTP:
            return False
        _SCRATCH_BUFFER[0:n] = packet
        _SCRATCH_LEN[0] = n
        if _srtp_protect_rtcp(self._ctx, _SCRATCH, _SCRATCH_LEN):
            return False
        try:
            sendto(_SCRATCH_BUFFER[0 : _SCRATCH_LEN[0]], self._addr)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Release the socket duplicate (the pair's own socket is aioice's to close)."""
        self._set_socket(None)
        self._sendto = None
        self._conn = self._pair = None

    def _repair(self, conn: Any) -> bool:
        self._conn = conn
        pair = conn._nominated.get(1) if conn is not None else None
        self._pair = pair
        if pair is None:
            self._set_socket(None)
            self._sendto = None
            return False
        self._addr = pair.remote_addr
        self._pending = False
        transport = pair.protocol.transport
        raw = transport.get_extra_info("socket") if type(pair.protocol) is StunProtocol else None
        if raw is not None:
            sock = socket.socket(fileno=os.dup(raw.fileno()))
            sock.setblocking(False)
            self._set_socket(sock)
            self._sendto = sock.sendto
        elif (relay := _turn_channel(transport, self._addr)) is not None:
            sock, channel = relay
            self._set_socket(sock)
            self._sendto = _channel_sender(sock, channel)
        else:
            # A TURN relay's transport wraps the data itself, a task per packet, until the
            # channel is bound (then refresh() takes the path above). StunProtocol.send_data is a
            # coroutine around this very call, so calling it directly is the same send.
            self._pending = isinstance(transport, TurnTransport)
            self._set_socket(None)
            self._sendto = transport.sendto
        return True

    def _set_socket(self, sock: socket.socket | None) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = sock


def _turn_channel(transport: Any, peer: tuple[str, int]) -> tuple[socket.socket, int] | None:
    """A duplicate of the socket to the TURN server and the channel bound to `peer`, for a
    UDP allocation whose channel is bound; None otherwise (TCP and TLS frame ChannelData)."""
    if not isinstance(transport, TurnTransport):
        return None
    inner: Any = transport._TurnTransport__inner_protocol  # type: ignore[attr-defined]
    channel = inner.peer_to_channel.get(peer)
    raw = inner.transport.get_extra_info("socket")
    if not isinstance(inner, TurnClientUdpProtocol) or channel is None or raw is None:
        return None
    sock = socket.socket(fileno=os.dup(raw.fileno()))  # connected to the TURN server
    sock.setblocking(False)
    return sock, channel


def _channel_sender(sock: socket.socket, channel: int) -> Callable[[bytes, tuple[str, int]], Any]:
    send, header = sock.send, _CHANNEL_HEADER

    def send_channel_data(data: bytes, _peer: tuple[str, int]) -> None:
        send(header(channel, len(data)) + data)  # RFC 8656 12.4; UDP needs no padding

    return send_channel_data


class IdleTrack(MediaStreamTrack):
    """A track whose recv() waits until stop(): for senders fed by RtpOutput instead.

    aiortc's sender calls recv() once its connection is up and its codec negotiated: that first
    call is reported through `on_start`. `track_id` is the msid track id its sender offers
    (aiortc's sender takes its track's id; MediaStreamTrack keeps it in `_id`).
    """

    def __init__(
        self, kind: str, on_start: Callable[[], None], track_id: str | None = None
    ) -> None:
        super().__init__()
        self.kind = kind
        if track_id is not None:
            self._id = track_id
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


def negotiated_extension(transceiver: RTCRtpTransceiver, uri: str) -> int | None:
    """The id the transceiver's m-line negotiated for a header extension, if it did."""
    extensions: list[Any] = transceiver._headerExtensions
    return next((e.id for e in extensions if e.uri == uri), None)


def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the transceiver sends or receives (the first negotiated one that is not RTX)."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    return next((c for c in codecs if not is_rtx(c)), None)


def rtx_ssrc(sender: RTCRtpSender) -> int:
    value: int = sender._rtx_ssrc
    return value


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
