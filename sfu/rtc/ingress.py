"""A lean receive path for a peer connection's RTP, past aiortc's queue, task, parser and receiver.

aiortc hands every datagram from aioice to an asyncio queue; a task per DTLS transport awaits it,
decrypts with pylibsrtp (two copies), parses the packet into objects (header extensions
included), routes it and awaits the receiver, which runs a jitter buffer, a bandwidth estimator
and statistics. A forwarding server needs four header fields and the payload. `RtpIngress`
hooks the aioice connection's `data_received`: SRTP packets from SSRCs registered here are
decrypted in place, in the socket's callback, and given to their handler; DTLS, and RTP from
SSRCs not registered (yet), take aiortc's path as before (STUN never reaches the hook: aioice
keeps it).

SRTCP takes the same shortcut, since every subscriber sends a report a second: it is decrypted
here, its report blocks and REMBs go to `feedback` (the subscriber's bandwidth estimate), a
compound of nothing else (RR, SDES, REMB) ends there, and anything else (other feedback, SR,
BYE) goes on, decrypted, to aiortc's RTCP handling.

A handler is `(payload_type, marker, sequence_number, timestamp, payload) -> None`. An SSRC
registered with an AudioLevel (sfu.speakers) also has the RFC 6464 audio level of each packet
added to it, read in the same one pass over the one-byte header extensions as the transport-wide
sequence number: one byte, one sum and one count per audio packet.
The caller learns the SSRCs from aiortc's path (sfu.rtc.fastpath.tap_rtp sees the first packets)
and registers them; an ICE restart that replaces the connection is followed on the next register.

The hook also drops two datagrams that would end aiortc's DTLS task, and with it the peer
connection, whoever sent them (aioice passes on data from any address): an empty one (aiortc
reads its first byte) and an SRTP one longer than pylibsrtp's buffer (its ValueError is not the
error aiortc catches). `install()` puts it in place before any media flows.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import Any

from aiortc import RTCDtlsTransport
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _srtp_lib

from ..speakers import AudioLevel
from .arrival import arrival, stamp_arrivals
from .rtcp import ReceiverFeedback, only_reports, read_feedback
from .twcc import TransportFeedback

Handler = Callable[[int, int, int, int, bytes], None]

_srtp_unprotect = _srtp_lib.srtp_unprotect
_srtp_unprotect_rtcp = _srtp_lib.srtp_unprotect_rtcp
_header = struct.Struct("!BBHII").unpack_from
_MAX_SRTP = 1500  # pylibsrtp's buffer
_MAX_EARLY = 512  # arrivals noted for packets on aiortc's path, not yet decrypted


class RtpIngress:
    __slots__ = (
        "_conn",
        "_dtls",
        "_early",
        "_handlers",
        "_len",
        "_level_id",
        "_levels",
        "_original",
        "_scan",
        "_tasks",
        "_twcc_id",
        "dropped",
        "feedback",
        "reports",
        "rtcp",
        "twcc",
    )

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls = dtls
        self._handlers: dict[int, Handler] = {}
        self._conn: Any = None
        self._original: Callable[[bytes, int], None] | None = None
        self._len = _ffi.new("int *")
        self._tasks: set[asyncio.Task[None]] = set()  # RTCP on its way through aiortc
        self.dropped = 0  # datagrams dropped: failed SRTP (forged, replayed), malformed, oversized
        self.reports = 0  # compound RTCP packets of receiver reports only, ended here
        self.rtcp = 0  # the other compound RTCP packets (handed on to aiortc)
        self._twcc_id = 0  # the transport-wide sequence number's extension id (0: not negotiated)
        self.twcc: TransportFeedback | None = None  # fed with it, when negotiated
        self._early: dict[int, float] = {}  # transport-wide number -> arrival, for aiortc's path
        self._level_id = 0  # the audio level's extension id (0: not negotiated)
        self._levels: dict[int, AudioLevel] = {}  # by SSRC: where each audio packet's level goes
        self._scan = False  # whether any one-byte extension is read at all
        # Told of the report blocks and REMBs in the remote's RTCP (sfu.bwe), when set.
        self.feedback: ReceiverFeedback | None = None

    def use_transport_cc(self, extension_id: int, sender_ssrc: int) -> TransportFeedback:
        """Record the transport-wide sequence number (one-byte header extension `extension_id`)
        of every RTP packet of the transport, for the feedback the sender gets (idempotent), with
        the time the kernel received it (sfu.rtc.arrival).

        Those taken here are recorded here. The others, on aiortc's path (the first packets of
        each SSRC, Chromium's first bandwidth probes on an RTX SSRC nobody knows yet, all of a
        publication a bot takes frames of), are recorded once aiortc has decrypted them, with
        the time noted when their datagram came: a probe whose packets were reported lost, or
        late by aiortc's queue, fails, and Chromium then ramps up slowly."""
        if self.twcc is None:
            self.twcc = TransportFeedback(sender_ssrc)
            _record_after_aiortc(self._dtls, self)
        self._twcc_id = extension_id
        self._scan = True
        return self.twcc

    def use_audio_level(self, extension_id: int) -> None:
        """Read the audio level (one-byte header extension `extension_id`, RFC 6464) of the
        packets of SSRCs registered with an AudioLevel."""
        self._level_id = extension_id
        self._scan = True

    @property
    def dtls(self) -> RTCDtlsTransport:
        return self._dtls

    @property
    def heard(self) -> int:
        """Datagrams taken here so far, but RTP (its handlers count that): the remote's RTCP,
        and what failed to decrypt. Read a few times a second to tell a path gone silent."""
        return self.reports + self.rtcp + self.dropped

    def register(self, ssrc: int, handler: Handler, level: AudioLevel | None = None) -> None:
        self._handlers[ssrc] = handler
        if level is not None:
            self._levels[ssrc] = level
        self.install()

    def unregister(self, ssrc: int) -> None:
        self._handlers.pop(ssrc, None)
        self._levels.pop(ssrc, None)

    def close(self) -> None:
        """Give the connection back its own `data_received`."""
        self._handlers.clear()
        self._levels.clear()
        for task in self._tasks:
            task.cancel()
        self._uninstall()

    def install(self) -> None:
        """Hook the DTLS transport's current ICE connection (idempotent); with transport-cc,
        stamp the datagrams of the sockets it has gathered so far (sfu.rtc.arrival)."""
        conn = self._dtls.transport._connection
        if self._twcc_id:
            stamp_arrivals(conn)
        if conn is self._conn:
            return
        self._uninstall()  # from a connection an ICE restart replaced
        original = conn.data_received
        take = self._take
        handlers = self._handlers

        take_rtcp = self._take_rtcp

        def data_received(data: bytes, component: int) -> None:
            n = len(data)
            if n == 0 or (n > _MAX_SRTP and 127 < data[0] < 192):
                self.dropped += 1
                return
            if 127 < data[0] < 192 and n >= 12:
                # RTCP's packet types 192-223 sit in RTP's second byte (RFC 5761 4).
                if 191 < data[1] < 224:
                    if take_rtcp(data):
                        return
                else:
                    handler = handlers.get(int.from_bytes(data[8:12], "big"))
                    if handler is not None and take(data, handler):
                        return
                    if self._twcc_id and data[0] & 0x10:
                        self._note_arrival(data)
            original(data, component)

        conn.data_received = data_received  # type: ignore[method-assign]
        self._conn, self._original = conn, original

    def _note_arrival(self, data: bytes) -> None:
        """An SRTP packet for aiortc's path: when it arrived, by its transport-wide number (the
        header is in the clear), until aiortc has authenticated it (see use_transport_cc)."""
        seq = transport_seq(data, self._twcc_id)
        if seq is not None:
            early = self._early
            if len(early) >= _MAX_EARLY:
                early.clear()  # nothing came of them: forged, or lost to aiortc's queue
            early[seq] = arrival()

    def record_decrypted(self, data: bytes) -> None:
        """An RTP packet aiortc decrypted (so authentic): record its transport-wide number."""
        twcc = self.twcc
        seq = transport_seq(data, self._twcc_id) if twcc is not None else None
        if twcc is not None and seq is not None:
            at = self._early.pop(seq, None)
            twcc.received.append((seq, _monotonic() if at is None else at))

    def _uninstall(self) -> None:
        conn, original = self._conn, self._original
        self._conn = self._original = None
        if conn is None or original is None:
            return
        if getattr(original, "__func__", None) is type(conn).data_received:
            del conn.data_received  # the class's own method again, and no cycle through us
        else:
            conn.data_received = original

    def _take_rtcp(self, data: bytes) -> bool:
        srtp = self._dtls._rx_srtp
        if srtp is None:
            return False
        n = len(data)
        buf, length = srtp._buffer, self._len
        buf[0:n] = data
        length[0] = n
        if _srtp_unprotect_rtcp(srtp._srtp[0], srtp._cdata, length):
            self.dropped += 1
            return True
        plain = buf[0 : length[0]]
        sink = self.feedback
        if not (read_feedback(plain, sink) if sink is not None else not only_reports(plain)):
            self.reports += 1
        else:
            self.rtcp += 1
            task = asyncio.ensure_future(self._dtls._handle_rtcp_data(plain))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def _take(self, data: bytes, handler: Handler) -> bool:
        srtp = self._dtls._rx_srtp
        if srtp is None:
            return False  # not keyed yet: aiortc's path knows what to do
        n = len(data)
        buf = srtp._buffer
        buf[0:n] = data
        length = self._len
        length[0] = n
        if _srtp_unprotect(srtp._srtp[0], srtp._cdata, length):
            self.dropped += 1
            return True
        n = length[0]
        b0, b1, seq, timestamp, ssrc = _header(buf, 0)
        start = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # a header extension: 4 bytes, then its length in 32-bit words
            if start + 4 > n:
                self.dropped += 1
                return True
            ext = buf[start : start + 4]
            end = start + 4 + 4 * ((ext[2] << 8) | ext[3])
            if self._scan and ext[0] == 0xBE and ext[1] == 0xDE and end <= n:
                self._extensions(buf[start + 4 : end], self._levels.get(ssrc))
            start = end
        end = n
        if b0 & 0x20:  # padding: its length is the last byte
            end -= buf[n - 1 : n][0]
        if start > end:
            self.dropped += 1
            return True
        handler(b1 & 0x7F, b1 >> 7, seq, timestamp, buf[start:end])
        return True

    def _extensions(self, elements: bytes, level: AudioLevel | None) -> None:
        """One pass over one-byte extension elements (RFC 8285 4.2: an ID and a length less one
        in the first byte; 0 is padding, ID 15 ends them): the transport-wide sequence number
        goes to the feedback recorder, the audio level (RFC 6464: V bit, then 7 bits of -dBov)
        to `level`, the SSRC's AudioLevel (None for video). Stops once it has what it wants."""
        twcc_id = self._twcc_id
        level_id = self._level_id if level is not None else 0
        i, n = 0, len(elements)
        while i < n:
            first = elements[i]
            if first == 0:
                i += 1
                continue
            ext_id = first >> 4
            if ext_id == twcc_id:
                if first & 0x0F == 1 and i + 3 <= n and self.twcc is not None:
                    self.twcc.received.append(((elements[i + 1] << 8) | elements[i + 2], arrival()))
                if not level_id:
                    return
                twcc_id = 0
            elif ext_id == level_id:
                if i + 2 <= n and level is not None:
                    level.total += elements[i + 1] & 0x7F
                    level.count += 1
                if not twcc_id:
                    return
                level_id = 0
            elif ext_id == 15:
                return
            i += 2 + (first & 0x0F)


def transport_seq(packet: bytes, extension_id: int) -> int | None:
    """The transport-wide sequence number of an RTP packet (SRTP or clear: headers are not
    encrypted), when its one-byte-header extension block has one with `extension_id`."""
    n = len(packet)
    if n < 16 or not packet[0] & 0x10:
        return None
    start = 12 + 4 * (packet[0] & 0x0F)
    if start + 4 > n or packet[start] != 0xBE or packet[start + 1] != 0xDE:
        return None
    i, end = start + 4, min(n, start + 4 + 4 * ((packet[start + 2] << 8) | packet[start + 3]))
    while i < end:
        first = packet[i]
        if first == 0:
            i += 1
            continue
        if first >> 4 == extension_id:
            if first & 0x0F == 1 and i + 3 <= end:
                return (packet[i + 1] << 8) | packet[i + 2]
            return None
        if first >> 4 == 15:
            return None
        i += 2 + (first & 0x0F)
    return None


def _record_after_aiortc(dtls: RTCDtlsTransport, ingress: RtpIngress) -> None:
    """Hook: aiortc's `RTCDtlsTransport._handle_rtp_data`, which gets each RTP packet of its
    path decrypted, before it parses and routes it (and drops what no receiver takes). A
    stand-in without it (a benchmark feeding the ingress by hand) has no aiortc path."""
    handle = getattr(dtls, "_handle_rtp_data", None)
    if handle is None:
        return

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        ingress.record_decrypted(data)
        await handle(data, arrival_time_ms)

    dtls._handle_rtp_data = handle_rtp_data  # type: ignore[method-assign]
