"""Publication: one track a participant sends to the server, and its fan-out.

Two fan-outs hang off the publisher's receiver:

- RTP, for subscribers: every packet is handed, in the same event-loop callback that received
  it, to each Subscription, which rewrites its header and sends it (sfu.rtc.fastpath). A ring of
  recent packets serves the subscribers' NACKs.
- Encoded frames, for anything that wants media objects: the receiver's frames (sfu.rtc.receiver)
  go through an aiortc MediaRelay, so `frames()` works for a bot that decodes, a recorder or
  any aiortc consumer.

Until something subscribes to frames, the publication takes the lean path: aiortc's receiver
never sees a packet (no jitter buffer, no frames, no bandwidth estimator), the packets of its
known SSRCs come straight from the socket (sfu.rtc.ingress), and the publisher's feedback is
ours: NACKs for what it lost on the way (sfu.inbound), receiver reports, and a REMB that caps it
at `max_bitrate`, as Janus's `bitrate` does. Its first packets always come through aiortc's
path, which is how the SSRCs are learnt. The first `frames()` hands everything back to
aiortc's receiver, for good.

Keyframe requests from all subscribers are throttled here. Closed by its Participant; close()
is idempotent. `_on_media` is the hot path: no await, no logging, no per-packet containers but
the one ring entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from signaling.log import ContextLogger, bind

from .inbound import InboundStream
from .keyframes import KeyframeThrottle
from .payload import keyframe_check
from .rtc import fastpath, rtcp
from .rtc import receiver as rtc_receiver
from .rtc.ingress import RtpIngress

if TYPE_CHECKING:
    from .subscription import Forward, Subscription

logger = logging.getLogger(__name__)

RING_SIZE = 1024  # packets kept for retransmission: ~1 s of 8 Mbps video
# A subscription that becomes ready starts on the latest keyframe, replayed from the ring with
# what followed it, when that keyframe is at most this old and this many packets back: a
# burst this short beats waiting for a new keyframe (a request, the publisher's encoder, the
# trip). Older, it asks for a new one, as before.
REPLAY_MAX_AGE = 0.5  # seconds
REPLAY_MAX_PACKETS = 64
RING_MASK = RING_SIZE - 1
assert RING_SIZE & RING_MASK == 0, "the ring size must be a power of 2"

# seq, RTP timestamp, marker, payload
RingEntry = tuple[int, int, int, bytes]


class Publication:
    def __init__(
        self,
        *,
        publisher_id: str,
        track: MediaStreamTrack,
        transceiver: RTCRtpTransceiver,
        sink: rtc_receiver.EncodedFrameSink,
        ingress: RtpIngress,
        keyframe_interval: float,
        max_bitrate: int,
        log: ContextLogger,
    ) -> None:
        self.publisher_id = publisher_id
        self.track = track
        self.id: str = track.id
        self.kind: str = track.kind
        self.receiver: RTCRtpReceiver = transceiver.receiver
        self.sink = sink
        self.ingress = ingress
        self.max_bitrate = max_bitrate
        self.rtcp_ssrc = fastpath.ssrc(transceiver.sender)  # names us in our RTCP feedback
        codec = fastpath.negotiated_codec(transceiver)
        if codec is None or codec.payloadType is None:
            raise ValueError("the publisher's m-line has no codec")
        self.codec = codec
        self.payload_type: int = codec.payloadType
        self.rtx_payload_type = fastpath.rtx_payload_type(transceiver, self.payload_type)
        self.clock_rate: int = codec.clockRate
        # Whether the publisher takes NACKs for this codec (browsers negotiate them for video).
        self.nack = any(fb.type == "nack" and not fb.parameter for fb in codec.rtcpFeedback)
        self.keyframe_start = keyframe_check(codec.mimeType)
        self.relay = MediaRelay()
        self.keyframes = KeyframeThrottle(keyframe_interval)
        self.closed = False
        self.subscriptions: tuple[Subscription, ...] = ()
        # The hot loop's two lists: the live subscriptions' forward(), the others' try_start().
        self._forwarders: tuple[Forward, ...] = ()
        self._pending: tuple[Subscription, ...] = ()
        self.waiting = 0  # subscriptions ready to forward but waiting for a keyframe
        self.packets = 0  # RTP packets received from the publisher (read by metrics)
        self.bytes = 0
        self.retransmissions = 0  # of those, RTX packets that filled a hole
        self.last_timestamp = 0
        self.last_arrival = 0.0  # time.monotonic() of the last packet
        self.sender_report: tuple[int, int] | None = None  # publisher's (NTP, RTP) clock pair
        self._ring: list[RingEntry | None] = [None] * RING_SIZE
        self.lean = True  # False once something subscribed to frames: aiortc receives
        self.stream: InboundStream | None = None  # the media SSRC's, on the lean path
        self.rtx_ssrc: int | None = None
        self.sender_report_at = 0.0  # time.monotonic() when `sender_report` arrived
        self._last_seq: int | None = None  # the newest sequence number received
        self._keyframe: tuple[int, float] | None = None  # where the latest keyframe starts, when
        self.replays = 0  # subscriptions started on a replayed keyframe
        self.next_report = 0.0  # event-loop time of our next RR (+ REMB) to the publisher
        self.log = bind(log, track=self.id[:8], kind=self.kind)
        self._loop = asyncio.get_running_loop()
        self._deferred: asyncio.TimerHandle | None = None
        fastpath.tap_rtp(self.receiver, self._on_rtp)
        fastpath.tap_sender_reports(self.receiver, self._on_sender_report)
        self._drain = asyncio.ensure_future(self._read_always())

    # --- RTP fan-out (hot path) --------------------------------------------------------------

    def _on_rtp(self, packet: RtpPacket) -> bool:
        """A packet on aiortc's path: the first ones of each SSRC, or all once frames are wanted.

        Returns True when aiortc's receiver must not see it.
        """
        pt, ssrc = packet.payload_type, packet.ssrc
        twcc = self.ingress.twcc
        if twcc is not None and packet.extensions.transport_sequence_number is not None:
            twcc.add(packet.extensions.transport_sequence_number, time.monotonic())
        if pt == self.payload_type:
            if self.stream is None or self.stream.ssrc != ssrc:
                if self.stream is not None:
                    self.ingress.unregister(self.stream.ssrc)  # the publisher changed SSRC
                self.stream = InboundStream(ssrc, self.clock_rate, packet.sequence_number)
                if twcc is not None:
                    twcc.media_ssrc = ssrc  # the feedback names a stream of the transport
        elif pt == self.rtx_payload_type:
            if self.rtx_ssrc is not None and self.rtx_ssrc != ssrc:
                self.ingress.unregister(self.rtx_ssrc)
            self.rtx_ssrc = ssrc
        else:
            return self.lean  # a payload type we do not forward
        if self.lean and not self.closed:
            # Registered again on every packet that still comes this way: after an ICE
            # restart, the ingress moves to the new connection.
            self.ingress.register(ssrc, self._on_lean)
            self._on_lean(
                pt, packet.marker, packet.sequence_number, packet.timestamp, packet.payload
            )
            return True
        if pt == self.rtx_payload_type:
            payload = packet.payload
            if len(payload) >= 2 and self._have((payload[0] << 8) | payload[1]):
                # A padding probe (Chromium resends old packets to probe bandwidth) or a late
                # duplicate. aiortc's jitter buffer would take a packet 100+ behind for a stream
                # restart and stall: keep only its size, for its bandwidth estimate.
                packet.padding_size += len(payload)
                packet.payload = b""
                return False
        seq, timestamp = packet.sequence_number, packet.timestamp
        self._on_lean(pt, packet.marker, seq, timestamp, packet.payload)
        return False

    def _on_lean(self, pt: int, marker: int, seq: int, timestamp: int, payload: bytes) -> None:
        now = time.monotonic()
        if pt == self.payload_type:
            stream = self.stream
            if stream is not None and self.lean:
                lost = stream.add(seq, timestamp, now)
                if lost and self.nack:
                    self._send_rtcp(rtcp.nack(self.rtcp_ssrc, stream.ssrc, lost))
        elif pt == self.rtx_payload_type:
            if len(payload) < 2:
                return  # padding only
            seq = (payload[0] << 8) | payload[1]
            if self._have(seq):
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
        self._on_media(seq, timestamp, marker, payload, now)

    def _have(self, seq: int) -> bool:
        held = self._ring[seq & RING_MASK]
        return held is not None and held[0] == seq

    def _on_media(self, seq: int, timestamp: int, marker: int, payload: bytes, now: float) -> None:
        self.packets += 1
        self.bytes += len(payload)
        self.last_timestamp = timestamp
        self.last_arrival = now
        self._ring[seq & RING_MASK] = (seq, timestamp, marker, payload)
        last = self._last_seq
        if last is None or (seq - last) & 0xFFFF < 0x8000:
            self._last_seq = seq
        keyframe = self.keyframe_start(payload)
        if keyframe:
            self._keyframe = (seq, now)
            if self.waiting > 0 or self.keyframes.outstanding:
                self.keyframes.keyframe()
        for forward in self._forwarders:
            forward(seq, timestamp, marker, payload)
        for sub in self._pending:
            sub.try_start(seq, timestamp, marker, payload, keyframe)

    def start(self, subscription: Subscription) -> None:
        """A subscription is ready to send: start it on the latest keyframe if that is recent
        and the ring holds it, else ask the publisher for a new one."""
        if self._keyframe is not None and self._last_seq is not None and self.kind == "video":
            seq, at = self._keyframe
            span = (self._last_seq - seq) & 0xFFFF
            first = self.packet(seq)
            if (
                first is not None
                and span < REPLAY_MAX_PACKETS
                and time.monotonic() - at <= REPLAY_MAX_AGE
            ):
                subscription.try_start(*first, True)
                for i in range(1, span + 1):
                    entry = self.packet((seq + i) & 0xFFFF)
                    if entry is not None:  # a hole: the subscriber will NACK it
                        subscription.forward(*entry)
                self.replays += 1
                return
        self.request_keyframe()

    def packet(self, seq: int) -> RingEntry | None:
        """A recent packet by its (publisher) sequence number, for a retransmission."""
        entry = self._ring[seq & RING_MASK]
        return entry if entry is not None and entry[0] == seq else None

    def _on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self.sender_report = (ntp_timestamp, rtp_timestamp)
        self.sender_report_at = time.monotonic()

    # --- feedback to the publisher, on the lean path ---------------------------------------------

    def report(self, now: float) -> None:
        """Called every REPORT_INTERVAL: NACK again what is still missing, and every 0.5-1.5 s
        (RFC 3550's spread) a receiver report, with a REMB for video."""
        stream = self.stream
        if not self.lean or self.closed or stream is None:
            return
        again = stream.nack_again()
        if again and self.nack:
            self._send_rtcp(rtcp.nack(self.rtcp_ssrc, stream.ssrc, again))
        if now < self.next_report:
            return
        self.next_report = now + random.uniform(0.5, 1.5)
        lsr = dlsr = 0
        if self.sender_report is not None:
            lsr = (self.sender_report[0] >> 16) & 0xFFFFFFFF
            dlsr = int((time.monotonic() - self.sender_report_at) * 65536)
        packet = rtcp.receiver_report(
            self.rtcp_ssrc,
            stream.ssrc,
            stream.fraction_lost(),
            stream.lost,
            stream.highest_sequence,
            stream.jitter,
            lsr,
            dlsr,
        )
        if self.kind == "video":
            packet += rtcp.remb(self.rtcp_ssrc, self.max_bitrate, [stream.ssrc])
        self._send_rtcp(packet)

    def _leave_ingress(self) -> None:
        for ssrc in (self.stream.ssrc if self.stream else None, self.rtx_ssrc):
            if ssrc is not None:
                self.ingress.unregister(ssrc)

    def _send_rtcp(self, packet: bytes) -> None:
        fastpath.send_rtcp(self.ingress.dtls, packet)

    def add(self, subscription: Subscription) -> None:
        self.subscriptions = (*self.subscriptions, subscription)
        self._pending = (*self._pending, subscription)

    def go_live(self, subscription: Subscription) -> None:
        """From now on `subscription.forward` gets every packet, keyframe or not."""
        self._pending = tuple(s for s in self._pending if s is not subscription)
        self._forwarders = (*self._forwarders, subscription.forward)

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)
        self._pending = tuple(s for s in self._pending if s is not subscription)
        self._forwarders = tuple(f for f in self._forwarders if f is not subscription.forward)

    # --- encoded frames, for aiortc consumers -------------------------------------------------

    def frames(self) -> MediaStreamTrack:
        """A new consumer of this publication's encoded frames (`av.Packet`s)."""
        if self.lean:
            # From now on aiortc's receiver sees every packet: it assembles the frames, and
            # sends the NACKs, reports and REMBs. Its decoder-less consumer starts on a keyframe.
            self.lean = False
            self._leave_ingress()
            self.log.debug("frames wanted: aiortc's receiver takes over")
            self.request_keyframe()
        return self.relay.subscribe(self.track, buffered=True)

    async def _read_always(self) -> None:
        # MediaRelay reads its source only once a consumer has pulled a frame; until then the
        # receiver's frames would pile up (unbounded) and the first consumer would get them
        # all in a burst, seconds late. A consumer of our own keeps the relay reading live.
        proxy = self.relay.subscribe(self.track, buffered=False)
        with contextlib.suppress(MediaStreamError):
            while True:
                await proxy.recv()

    # --- keyframes ---------------------------------------------------------------------------

    def request_keyframe(self) -> None:
        if self.closed or self.kind != "video":
            return
        delay = self.keyframes.request(self._loop.time())
        if delay is None:
            return
        if delay == 0.0:
            self._send_pli()
        else:
            self._deferred = self._loop.call_later(delay, self._fire_deferred)

    def _fire_deferred(self) -> None:
        self._deferred = None
        self.keyframes.fire(self._loop.time())
        self._send_pli()

    def _send_pli(self) -> None:
        if self.closed:
            return
        if self.stream is None:
            # No media yet, so no SSRC to name: ask again once the window has passed.
            self.request_keyframe()
            return
        self._send_rtcp(rtcp.pli(self.rtcp_ssrc, self.stream.ssrc))
        self.log.debug("keyframe requested")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self._leave_ingress()
        self.subscriptions = self._pending = ()
        self._forwarders = ()
        # Ending the source ends the relay and, through it, every consumer's track, even when
        # the receiver never started (and so will never end the track itself).
        rtc_receiver.end_track(self.receiver)
        self.log.info("unpublished")
