"""Layer: one RTP stream of a Publication, a simulcast encoding (`l`, `m`, `h`) or its only stream.

Owns what is per stream: the media SSRC's reception state (sfu.inbound) and its RTX SSRC, the
ring of recent packets (NACKs from subscribers, keyframe replay for joins), where the latest
keyframe starts, the publisher's sender report for the SSRC, whether the layer is flowing, and
its fan-out: the subscriptions that forward it (`forwarders`, their outputs' send methods) and
those that wait for a keyframe of it to start or switch on (`pending`).

`on_lean()` is the hot path (sfu.rtc.ingress calls it from the socket's callback once the SSRC is
registered): no await, no logging, no per-packet containers but the one ring entry. What is
publication-wide (codec, keyframe throttle, feedback to the publisher, choosing layers) stays on
the Publication. Made and closed by its Publication.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .inbound import InboundStream
from .rtc.fastpath import stamp_send_time

if TYPE_CHECKING:
    from .publication import Publication
    from .subscription import Forward, Subscription

RING_SIZE = 1024  # packets kept for retransmission: ~1 s of 8 Mbps video
RING_MASK = RING_SIZE - 1
assert RING_SIZE & RING_MASK == 0, "the ring size must be a power of 2"

# seq, RTP timestamp, marker, payload
RingEntry = tuple[int, int, int, bytes]


class Layer:
    __slots__ = (
        "bit",
        "bytes",
        "flowing",
        "forwarders",
        "index",
        "keyframe_at",
        "keyframe_start",
        "keyframes",
        "last_arrival",
        "last_seq",
        "last_timestamp",
        "lean",
        "nack",
        "packets",
        "payload_type",
        "pending",
        "publication",
        "retransmissions",
        "rid",
        "ring",
        "rtx_payload_type",
        "rtx_ssrc",
        "sender_report",
        "sender_report_at",
        "stream",
        "unrepaired",
    )

    def __init__(self, publication: Publication, index: int, rid: str | None) -> None:
        self.publication = publication
        self.index = index  # rank: 0 for `l` (or a plain stream), 1 for `m`, 2 for `h`
        self.bit = 1 << index  # in keyframe-request masks (sfu.keyframes)
        self.rid = rid  # None for a publication without simulcast
        # Read on every packet, so copied here from the publication:
        self.payload_type = publication.payload_type
        self.rtx_payload_type = publication.rtx_payload_type
        self.keyframe_start = publication.keyframe_start
        self.keyframes = publication.keyframes
        self.nack = publication.nack
        self.lean = True  # the publication's, kept in step by it
        self.stream: InboundStream | None = None  # the media SSRC's, on the lean path
        self.rtx_ssrc: int | None = None
        self.ring: list[RingEntry | None] = [None] * RING_SIZE
        self.last_seq: int | None = None  # the newest sequence number received
        self.last_timestamp = 0
        self.last_arrival = 0.0  # time.monotonic() of the last packet
        self.keyframe_at: tuple[int, float] | None = None  # where the latest keyframe starts, when
        self.sender_report: tuple[int, int] | None = None  # publisher's (NTP, RTP) clock pair
        self.sender_report_at = 0.0  # time.monotonic() when `sender_report` arrived
        self.flowing = False  # packets came lately (sfu.publication decides "lately")
        self.forwarders: tuple[Forward, ...] = ()
        self.pending: tuple[Subscription, ...] = ()
        self.packets = 0  # RTP packets received (read by metrics)
        self.bytes = 0
        self.retransmissions = 0  # of those, RTX packets that filled a hole
        self.unrepaired = 0  # the stream's `unrepaired` when the publication last looked

    @property
    def name(self) -> str:
        return self.rid or "-"

    def latch(self, ssrc: int, payload_type: int, first_seq: int) -> int | None:
        """A new SSRC of this layer (its media or its RTX): returns the SSRC it replaces."""
        if payload_type == self.payload_type:
            old = self.stream.ssrc if self.stream is not None else None
            self.stream = InboundStream(ssrc, self.publication.clock_rate, first_seq)
            return old if old != ssrc else None
        old = self.rtx_ssrc
        self.rtx_ssrc = ssrc
        return old if old != ssrc else None

    # --- hot path ----------------------------------------------------------------------------

    def on_lean(self, pt: int, marker: int, seq: int, timestamp: int, payload: bytes) -> None:
        now = time.monotonic()
        if pt == self.payload_type:
            stream = self.stream
            if stream is not None and self.lean:
                lost = stream.add(seq, timestamp, now)
                if lost and self.nack:
                    self.publication.send_nack(stream.ssrc, lost)
        elif pt == self.rtx_payload_type:
            if len(payload) < 2:
                return  # padding only
            seq = (payload[0] << 8) | payload[1]
            if self.have(seq):
                return  # a probe or a duplicate: subscribers have it
            if self.lean and self.stream is not None and not self.stream.recovered(seq):
                # Not a hole we asked to fill: a bandwidth probe resending a packet the ring has
                # already dropped, or an answer given up on. Forwarded, a packet that old would
                # make subscribers' jitter buffers take it for a restart of the stream.
                return
            payload = payload[2:]
            self.retransmissions += 1
        else:
            return
        self.on_media(seq, timestamp, marker, payload, now)

    def on_media(self, seq: int, timestamp: int, marker: int, payload: bytes, now: float) -> None:
        stamp_send_time(now)  # the abs-send-time of the fan-out below
        self.packets += 1
        self.bytes += len(payload)
        self.last_timestamp = timestamp
        self.last_arrival = now
        self.ring[seq & RING_MASK] = (seq, timestamp, marker, payload)
        last = self.last_seq
        if last is None or (seq - last) & 0xFFFF < 0x8000:
            self.last_seq = seq
        keyframe = self.keyframe_start(payload)
        if keyframe:
            self.keyframe_at = (seq, now)
            if self.keyframes.outstanding & self.bit:
                self.keyframes.keyframe(self.bit)
        if not self.flowing:
            self.publication.layer_started(self)  # may move subscriptions here: read them after
        for forward in self.forwarders:
            forward(seq, timestamp, marker, payload)
        for sub in self.pending:
            sub.try_start(seq, timestamp, marker, payload, keyframe)

    # --- the ring ------------------------------------------------------------------------------

    def have(self, seq: int) -> bool:
        held = self.ring[seq & RING_MASK]
        return held is not None and held[0] == seq

    def packet(self, seq: int) -> RingEntry | None:
        """A recent packet by its (publisher) sequence number, for a retransmission."""
        entry = self.ring[seq & RING_MASK]
        return entry if entry is not None and entry[0] == seq else None

    def newest(self) -> RingEntry | None:
        return self.packet(self.last_seq) if self.last_seq is not None else None

    def recent_keyframe(self, max_age: float, max_packets: int) -> tuple[int, int] | None:
        """(sequence number, packets after it) of the latest keyframe, when it is at most
        `max_age` seconds and `max_packets` packets old and the ring still holds its start."""
        if self.keyframe_at is None or self.last_seq is None:
            return None
        seq, at = self.keyframe_at
        span = (self.last_seq - seq) & 0xFFFF
        if span >= max_packets or time.monotonic() - at > max_age or not self.have(seq):
            return None
        return seq, span

    # --- fan-out -----------------------------------------------------------------------------

    def add_pending(self, sub: Subscription) -> None:
        if sub not in self.pending:
            self.pending = (*self.pending, sub)

    def remove_pending(self, sub: Subscription) -> None:
        self.pending = tuple(s for s in self.pending if s is not sub)

    def add_forwarder(self, forward: Forward) -> None:
        self.forwarders = (*self.forwarders, forward)

    def remove_forwarder(self, forward: Forward) -> None:
        self.forwarders = tuple(f for f in self.forwarders if f is not forward)

    def clear(self) -> None:
        self.forwarders = ()
        self.pending = ()
