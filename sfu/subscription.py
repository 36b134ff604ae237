"""Subscription: one Publication forwarded to one Participant.

Owns the subscriber side of the media path, at the RTP level: its own SSRC, sequence numbers
and timestamps (the publisher's, shifted by offsets fixed when forwarding starts), the wait for
a keyframe (a decoder can only start there), retransmissions from the publication's ring when
the subscriber NACKs, and keyframe requests: one as soon as its sender is up, more while it
waits, and whenever the subscriber reports picture loss.

The subscriber's aiortc RTCRtpSender is kept for what it does well (SDP, feedback routing) but is
given an IdleTrack: packets go out through sfu.rtc.fastpath.RtpOutput, and sender reports from
`report()` (sfu.rtc.rtcp), cheaper than the sender's own RTCP task.
Until a keyframe passes, the publication hands it every packet (`try_start()`); from then on it
calls the output's `forward()` directly, the hot path: no await, no logging, one header and one
send. Closed by its Participant; close() is idempotent.
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

VIDEO_REPORT_INTERVAL = 1.0  # seconds, on average, between RTCP sender reports
AUDIO_REPORT_INTERVAL = 5.0

# (sequence number, timestamp, marker, payload), in the publisher's numbering
Forward = Callable[[int, int, int, bytes], bool]


class Subscription:
    __slots__ = (
        "_cname",
        "_output",
        "closed",
        "dropped",
        "forward",
        "live",
        "nacks",
        "next_report",
        "plis",
        "publication",
        "ready",
        "retransmitted",
        "subscriber_id",
        "track",
        "transceiver",
    )

    def __init__(self, publication: Publication, subscriber_id: str) -> None:
        self.publication = publication
        self.subscriber_id = subscriber_id
        self.track = fastpath.IdleTrack(publication.kind, on_start=self._on_sender_started)
        self.transceiver: RTCRtpTransceiver | None = None
        self.ready = False  # the subscriber's connection is up: we can send
        self.live = False  # forwarding (a keyframe has passed)
        self.closed = False
        self.forward: Forward = _not_ready  # the output's, once ready: the publication calls it
        self._output: fastpath.RtpOutput | None = None
        self._cname = b""
        self.next_report = 0.0  # event-loop time of the next RTCP sender report
        # Read by the metrics collector at scrape time (never a per-packet metrics call).
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
        pt = codec.payloadType if codec is not None else None
        output = fastpath.RtpOutput(self.transceiver.sender, pt or 0)
        if pt is None or not output.bind():
            self.publication.log.warning(
                "subscriber %s: sender started but cannot send (codec %s)",
                self.subscriber_id,
                codec,
            )
            return
        self._output = output
        self._cname = rtcp.cname(self.transceiver.sender)
        self.ready = True
        self.publication.log.debug(
            "subscriber %s: ready, waiting for a keyframe", self.subscriber_id
        )
        self.publication.waiting += 1
        self.publication.start(self)

    @property
    def packets(self) -> int:
        """RTP packets sent (forwarded and resent)."""
        return self._output.packets if self._output is not None else 0

    @property
    def payload_bytes(self) -> int:
        return self._output.bytes if self._output is not None else 0

    # --- until a keyframe ----------------------------------------------------------------------

    def try_start(
        self, seq: int, timestamp: int, marker: int, payload: bytes, keyframe: bool
    ) -> None:
        """A packet, while waiting for a keyframe to start on (a decoder can only start there)."""
        if not (self.ready and keyframe):
            self.dropped += 1
            if self.ready:
                # Throttled: this only sends again once an earlier request looks lost.
                self.publication.request_keyframe()
            return
        output = self._output
        assert output is not None  # ready
        # Random origins, as a sender of its own would pick (RFC 3550 5.1); the first sequence
        # number stays low so a long stream never wraps into SRTP's replay window trouble.
        output.seq_offset = (random.randrange(1 << 15) - seq) & 0xFFFF
        output.ts_offset = (random.getrandbits(32) - timestamp) & 0xFFFFFFFF
        self.live = True
        self.forward = output.forward
        self.publication.waiting -= 1
        self.publication.go_live(self)
        self.publication.log.debug("subscriber %s: forwarding from seq %d", self.subscriber_id, seq)
        output.forward(seq, timestamp, marker, payload)

    # --- feedback from the subscriber ------------------------------------------------------------

    def on_picture_loss(self) -> None:
        """The subscriber sent a PLI or FIR: its decoder needs a keyframe."""
        self.plis += 1
        self.publication.request_keyframe()

    def on_nack(self, seq: int) -> None:
        """The subscriber lost `seq` (its numbering): resend it if the ring still has it."""
        self.nacks += 1
        output = self._output
        if not self.live or output is None:
            return
        entry = self.publication.packet((seq - output.seq_offset) & 0xFFFF)
        if entry is not None and output.forward(*entry):
            self.retransmitted += 1

    # --- RTCP sender reports ------------------------------------------------------------------

    def report(self, now: float) -> None:
        """Called every REPORT_INTERVAL: follow the nominated ICE pair, and send an RTCP sender
        report when one is due.

        Its clock pair keeps lip sync: the publisher's own (NTP, RTP) pair, shifted into our
        timestamps, once the publisher has sent one; until then, now and our latest timestamp.
        """
        output = self._output
        if not self.live or output is None:
            return
        output.refresh()  # the ICE pair forward() sends on, followed at this pace
        if now < self.next_report:
            return
        # Randomised over 0.5-1.5 intervals (RFC 3550 6.2): 1 s for video, 5 s for audio, as
        # libwebrtc and mediasoup space theirs (an audio stream's RTCP share is small).
        pub = self.publication
        interval = AUDIO_REPORT_INTERVAL if pub.kind == "audio" else VIDEO_REPORT_INTERVAL
        self.next_report = now + random.uniform(0.5, 1.5) * interval
        if pub.sender_report is not None:
            ntp, rtp = pub.sender_report
        else:
            ntp = current_ntp_time()
            elapsed = max(0.0, time.monotonic() - pub.last_arrival)
            rtp = pub.last_timestamp + int(elapsed * pub.clock_rate)
        packet = rtcp.sender_report(
            output.ssrc, ntp, rtp + output.ts_offset, output.packets, output.bytes, self._cname
        )
        output.send_rtcp(packet)

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
        self.publication.remove(self)
        self.forward = _not_ready
        if self._output is not None:
            self._output.close()
        self.track.stop()
        if self.transceiver is not None:
            sender = self.transceiver.sender
            rtc_sender.on_keyframe_request(sender, _ignore)
            fastpath.on_retransmit_request(sender, _ignore_seq)
            sender.replaceTrack(None)


def _not_ready(seq: int, timestamp: int, marker: int, payload: bytes) -> bool:
    return False


def _ignore() -> None:
    pass


def _ignore_seq(seq: int) -> None:
    pass
