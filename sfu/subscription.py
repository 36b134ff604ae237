"""Subscription: one Publication forwarded to one Participant.

Owns the subscriber side of the media path, at the RTP level: its own SSRC, sequence numbers
and timestamps (the publisher's, shifted by offsets fixed when forwarding starts), the wait for
a keyframe (a decoder can only start there), retransmissions from the publication's ring when
the subscriber NACKs, and keyframe requests: one as soon as its sender is up, more while it
waits, and whenever the subscriber reports picture loss.

The subscriber's aiortc RTCRtpSender is kept for what it does well (SDP, feedback routing) but is
given an IdleTrack: packets go out through sfu.rtc.fastpath.RtpOutput, and sender reports from
`report()` (sfu.rtc.rtcp), cheaper than the sender's own RTCP task.
`forward()` is the hot path: no await, no logging, one header and one send.
Closed by its Participant; close() is idempotent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time

from .rtc import fastpath, rtcp
from .rtc import sender as rtc_sender

if TYPE_CHECKING:
    from .publication import Publication

# (second header byte: marker and payload type, sequence number, timestamp, SSRC, payload)
Send = Callable[[int, int, int, int, bytes], bool]


class Subscription:
    __slots__ = (
        "_cname",
        "_marker_pt",
        "_output",
        "_send",
        "bytes",
        "closed",
        "dropped",
        "live",
        "nacks",
        "next_report",
        "packets",
        "plis",
        "publication",
        "ready",
        "retransmitted",
        "seq_offset",
        "ssrc",
        "subscriber_id",
        "track",
        "transceiver",
        "ts_offset",
    )

    def __init__(self, publication: Publication, subscriber_id: str) -> None:
        self.publication = publication
        self.subscriber_id = subscriber_id
        self.track = fastpath.IdleTrack(publication.kind, on_start=self._on_sender_started)
        self.transceiver: RTCRtpTransceiver | None = None
        self.ready = False  # the subscriber's connection is up: we can send
        self.live = False  # forwarding (a keyframe has passed)
        self.closed = False
        self.ssrc = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self._marker_pt = (0, 0)  # second header byte, indexed by the marker bit
        self._send: Send = _not_ready
        self._output: fastpath.RtpOutput | None = None
        self._cname = b""
        self.next_report = 0.0  # event-loop time of the next RTCP sender report
        # Read by the metrics collector at scrape time (never a per-packet metrics call).
        self.packets = 0  # RTP packets forwarded
        self.bytes = 0  # RTP payload bytes forwarded
        self.dropped = 0  # packets not forwarded while waiting for a keyframe
        self.nacks = 0  # sequence numbers the subscriber asked to be resent
        self.retransmitted = 0
        self.plis = 0  # PLI/FIR from the subscriber
        publication.add(self)

    def attach(self, transceiver: RTCRtpTransceiver) -> None:
        """Bind to the transceiver that carries this subscription (before it is offered)."""
        self.transceiver = transceiver
        sender = transceiver.sender
        fastpath.prefer_codec(transceiver, self.publication.codec.mimeType)
        rtc_sender.set_stream_id(sender, self.publication.publisher_id)
        rtc_sender.on_keyframe_request(sender, self.on_picture_loss)
        fastpath.on_retransmit_request(sender, self.on_nack)
        rtcp.stop_sender_reports(sender)  # report() sends them, from our own counts

    def _on_sender_started(self) -> None:
        # aiortc starts the sender once DTLS is up and the m-line negotiated.
        if self.closed or self.transceiver is None:
            return
        codec = fastpath.negotiated_codec(self.transceiver)
        output = fastpath.RtpOutput(self.transceiver.sender)
        if codec is None or codec.payloadType is None or not output.bind():
            self.publication.log.warning(
                "subscriber %s: sender started but cannot send (codec %s)",
                self.subscriber_id,
                codec,
            )
            return
        pt = codec.payloadType
        self.ssrc = fastpath.ssrc(self.transceiver.sender)
        self._marker_pt = (pt, 0x80 | pt)
        self._send = output.send
        self._output = output
        self._cname = rtcp.cname(self.transceiver.sender)
        self.ready = True
        self.publication.log.debug(
            "subscriber %s: ready, waiting for a keyframe", self.subscriber_id
        )
        self.publication.waiting += 1
        self.publication.request_keyframe()

    # --- hot path ------------------------------------------------------------------------------

    def forward(
        self, seq: int, timestamp: int, marker: int, payload: bytes, keyframe: bool
    ) -> None:
        if not self.live:
            if not (self.ready and keyframe):
                self.dropped += 1
                if self.ready:
                    # Throttled: this only sends again once an earlier request looks lost.
                    self.publication.request_keyframe()
                return
            self._go_live(seq, timestamp)
        if self._send(
            self._marker_pt[marker],
            (seq + self.seq_offset) & 0xFFFF,
            (timestamp + self.ts_offset) & 0xFFFFFFFF,
            self.ssrc,
            payload,
        ):
            self.packets += 1
            self.bytes += len(payload)

    def _go_live(self, seq: int, timestamp: int) -> None:
        # Random origins, as a sender of its own would pick (RFC 3550 5.1); the first sequence
        # number stays low so a long stream never wraps into SRTP's replay window trouble.
        self.seq_offset = (random.randrange(1 << 15) - seq) & 0xFFFF
        self.ts_offset = (random.getrandbits(32) - timestamp) & 0xFFFFFFFF
        self.live = True
        self.publication.waiting -= 1
        self.publication.log.debug("subscriber %s: forwarding from seq %d", self.subscriber_id, seq)

    # --- feedback from the subscriber ------------------------------------------------------------

    def on_picture_loss(self) -> None:
        """The subscriber sent a PLI or FIR: its decoder needs a keyframe."""
        self.plis += 1
        self.publication.request_keyframe()

    def on_nack(self, seq: int) -> None:
        """The subscriber lost `seq` (its numbering): resend it if the ring still has it."""
        self.nacks += 1
        if not self.live:
            return
        entry = self.publication.packet((seq - self.seq_offset) & 0xFFFF)
        if entry is None:
            return
        _, timestamp, marker, payload = entry
        if self._send(
            self._marker_pt[marker],
            seq,
            (timestamp + self.ts_offset) & 0xFFFFFFFF,
            self.ssrc,
            payload,
        ):
            self.retransmitted += 1

    # --- RTCP sender reports ------------------------------------------------------------------

    def report(self, now: float) -> None:
        """Send an RTCP sender report when one is due (every 0.5-1.5 s, as aiortc would).

        Its clock pair keeps lip sync: the publisher's own (NTP, RTP) pair, shifted into our
        timestamps, once the publisher has sent one; until then, now and our latest timestamp.
        """
        if not self.live or self._output is None or now < self.next_report:
            return
        self.next_report = now + random.uniform(0.5, 1.5)
        pub = self.publication
        if pub.sender_report is not None:
            ntp, rtp = pub.sender_report
        else:
            ntp = current_ntp_time()
            elapsed = max(0.0, time.monotonic() - pub.last_arrival)
            rtp = pub.last_timestamp + int(elapsed * pub.clock_rate)
        packet = rtcp.sender_report(
            self.ssrc, ntp, rtp + self.ts_offset, self.packets, self.bytes, self._cname
        )
        self._output.send_rtcp(packet)

    def close(self) -> None:
        """Stop forwarding. The transceiver stays in the subscriber's connection (aiortc cannot
        remove an m-line), so it must not keep this subscription, and through it the
        publisher's receiver and connection, alive."""
        if self.closed:
            return
        self.closed = True
        if self.ready and not self.live:
            self.publication.waiting -= 1
        self.ready = self.live = False
        self._send = _not_ready
        self._output = None
        self.publication.remove(self)
        self.track.stop()
        if self.transceiver is not None:
            sender = self.transceiver.sender
            rtc_sender.on_keyframe_request(sender, _ignore)
            fastpath.on_retransmit_request(sender, _ignore_seq)
            sender.replaceTrack(None)


def _not_ready(second_byte: int, seq: int, timestamp: int, ssrc: int, payload: bytes) -> bool:
    return False


def _ignore() -> None:
    pass


def _ignore_seq(seq: int) -> None:
    pass
