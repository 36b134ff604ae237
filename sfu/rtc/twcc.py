"""TransportFeedback: transport-wide congestion control feedback for a publisher (receive side).

A publisher that negotiated the transport-wide sequence number header extension
(draft-holmer-rmcat-transport-wide-cc-extensions-01) numbers every packet it sends on the
transport, whatever its stream; the receiver tells it, several times a second, which numbers
arrived and when (an RTCP transport-cc feedback, RTPFB FMT 15). From those the sender runs its
own delay- and loss-based estimator (libwebrtc's GoogCC) and probes for more: Chromium finds
its uplink's rate in a second or two, where on REMB alone it either takes a fixed REMB on trust
(its first seconds) or grows ~8 %/s from 300 kbps (a REMB that is an estimate, aiortc's).

`add()` runs once per received packet (one list append); `build()` runs on a timer
(sfu.backend, every FEEDBACK_INTERVAL) and returns the feedback packets for everything
since the previous call. A packet that arrives after the feedback covering its number went out
was reported lost, and is ignored, as libwebrtc's receiver does once it has moved on.
"""

from __future__ import annotations

import struct

RTCP_RTPFB, FMT_TRANSPORT_CC = 205, 15
URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

TICKS_PER_SECOND = 4000  # a receive delta's unit: 250 µs
TICKS_PER_REFERENCE = 256  # the reference time's unit: 64 ms
# Per feedback packet, once its first received packet is in: at most ~1.1 KB whatever the pattern
# of loss (losses before it cost 2 bytes per 8191, in run-length chunks).
MAX_STATUSES = 2000
MAX_RECEIVED = 250
MAX_RANGE = 4000  # sequence numbers one build() may cover: older ones are given up

# Packet status symbols (section 3.1.1)
NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2

_HEADER = struct.Struct("!BBHLLHHL")  # RTCP header, sender SSRC, media SSRC, base, count, ref|fb
_CHUNK = struct.Struct("!H")
_LARGE = struct.Struct("!h")


class TransportFeedback:
    __slots__ = (
        "_arrivals",
        "_count",
        "_max",
        "_next",
        "media_ssrc",
        "packets",
        "received",
        "sender_ssrc",
    )

    def __init__(self, sender_ssrc: int, media_ssrc: int = 0) -> None:
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = media_ssrc  # a stream of the publisher's (libwebrtc reads it)
        self.received: list[tuple[int, float]] = []  # (16-bit number, arrival) since build()
        self._arrivals: dict[int, float] = {}  # unwrapped sequence number -> arrival (seconds)
        self._max: int | None = None  # the highest unwrapped sequence number seen
        self._next: int | None = None  # the first number the next feedback reports on
        self._count = 0  # feedback packets sent, modulo 256 on the wire
        self.packets = 0  # packets recorded (counted as the feedback is built)

    @property
    def sent(self) -> int:
        """Feedback packets built."""
        return self._count

    def add(self, seq: int, arrival: float) -> None:
        """A packet numbered `seq` (16 bits) arrived at `arrival` (seconds, a fixed origin).

        The ingress appends `(seq, arrival)` to `received` itself (a call less per packet):
        numbers are unwrapped when the feedback is built."""
        self.received.append((seq, arrival))

    def _unwrap(self) -> None:
        arrivals, top, next_ = self._arrivals, self._max, self._next
        for seq, arrival in self.received:
            if top is None:
                ext = top = seq
            else:
                delta = (seq - top) & 0xFFFF
                if delta < 0x8000:
                    ext = top = top + delta
                else:
                    ext = top + delta - 0x10000  # late, or reordered
            if next_ is None or ext >= next_:  # else: already reported lost
                arrivals[ext] = arrival
        self.packets += len(self.received)
        self.received.clear()
        self._max = top

    def build(self) -> list[bytes]:
        """Feedback for every number since the last call (none when nothing arrived)."""
        self._unwrap()
        arrivals = self._arrivals
        if not arrivals:
            return []
        end = max(arrivals)
        start = min(arrivals) if self._next is None else self._next
        if end - start >= MAX_RANGE:
            start = end - MAX_RANGE + 1
        packets = []
        while start <= end:
            packet, start = self._packet(start, end)
            packets.append(packet)
        self._next = end + 1
        arrivals.clear()
        return packets

    def _packet(self, base: int, end: int) -> tuple[bytes, int]:
        """One feedback packet from `base`; returns it and the first number it left out."""
        arrivals = self._arrivals
        statuses: list[int] = []
        deltas = bytearray()
        reference: int | None = None
        previous = 0  # arrival of the previous received packet, in ticks
        seq = base
        received = 0
        while seq <= end and (
            reference is None or (len(statuses) < MAX_STATUSES and received < MAX_RECEIVED)
        ):
            arrival = arrivals.get(seq)
            if arrival is None:
                statuses.append(NOT_RECEIVED)
                seq += 1
                continue
            ticks = int(arrival * TICKS_PER_SECOND + 0.5)
            if reference is None:
                reference = ticks // TICKS_PER_REFERENCE
                previous = reference * TICKS_PER_REFERENCE
            delta = ticks - previous
            if 0 <= delta <= 0xFF:
                statuses.append(SMALL_DELTA)
                deltas.append(delta)
            elif -0x8000 <= delta <= 0x7FFF:
                statuses.append(LARGE_DELTA)
                deltas += _LARGE.pack(delta)
            else:
                break  # too far from the previous one: the next packet starts here
            previous = ticks
            received += 1
            seq += 1
        # Trailing losses are reported by the next packet (or the next build), which starts
        # from its own received packet, so every packet ends on a received one.
        while statuses and statuses[-1] == NOT_RECEIVED:
            statuses.pop()
            seq -= 1
        assert reference is not None, "a feedback packet starts before a received packet"
        body = encode_chunks(statuses) + deltas
        padding = -len(body) % 4
        words = (_HEADER.size + len(body) + padding) // 4 - 1
        header = _HEADER.pack(
            (0xA0 if padding else 0x80) | FMT_TRANSPORT_CC,
            RTCP_RTPFB,
            words,
            self.sender_ssrc,
            self.media_ssrc,
            base & 0xFFFF,
            len(statuses),
            (reference & 0xFFFFFF) << 8 | (self._count & 0xFF),
        )
        self._count += 1
        if padding:
            body += bytes(padding - 1) + bytes((padding,))  # RFC 3550: the last byte counts them
        return header + bytes(body), seq


def encode_chunks(statuses: list[int]) -> bytes:
    """Packet status chunks (section 3.1.2-3.1.4) for these symbols, run-length where it pays.

    The last status vector chunk may hold more symbols than there are statuses: the packet
    status count tells the reader where to stop.
    """
    out = bytearray()
    i, n = 0, len(statuses)
    while i < n:
        symbol = statuses[i]
        run = 1
        while i + run < n and statuses[i + run] == symbol and run < 0x1FFF:
            run += 1
        window = statuses[i : i + 14]
        if run >= 14 or (run >= 7 and LARGE_DELTA in window):
            out += _CHUNK.pack(symbol << 13 | run)  # run length: 0, 2-bit symbol, 13-bit run
            i += run
        elif LARGE_DELTA not in window:
            bits = 0
            for k, s in enumerate(window):
                bits |= s << (13 - k)
            out += _CHUNK.pack(0x8000 | bits)  # status vector of 14 one-bit symbols
            i += len(window)
        else:
            bits = 0
            for k, s in enumerate(statuses[i : i + 7]):
                bits |= s << (12 - 2 * k)
            out += _CHUNK.pack(0xC000 | bits)  # status vector of 7 two-bit symbols
            i += 7
    return bytes(out)
