"""Publication: one track a participant sends to the server, and its fan-out.

Two fan-outs hang off the publisher's receiver:

- RTP, for subscribers: every packet is handed, in the same event-loop callback that received
  it, to each Subscription, which rewrites its header and sends it (sfu.rtc.fastpath). A ring of
  recent packets serves the subscribers' NACKs.
- Encoded frames, for anything that wants media objects: the receiver's frames (sfu.rtc.receiver)
  go through an aiortc MediaRelay, so `subscribe()` works for a bot that decodes, a recorder or
  any aiortc consumer.

Keyframe requests from all subscribers are throttled here. Closed by its Participant; close()
is idempotent. `_on_rtp` is the hot path: no await, no logging, no per-packet containers but the
one ring entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from signaling.log import ContextLogger, bind

from .keyframes import KeyframeThrottle
from .payload import keyframe_check
from .rtc import fastpath
from .rtc import receiver as rtc_receiver

if TYPE_CHECKING:
    from .subscription import Subscription

logger = logging.getLogger(__name__)

RING_SIZE = 1024  # packets kept for retransmission: ~1 s of 8 Mbps video
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
        keyframe_interval: float,
        log: ContextLogger,
    ) -> None:
        self.publisher_id = publisher_id
        self.track = track
        self.id: str = track.id
        self.kind: str = track.kind
        self.receiver: RTCRtpReceiver = transceiver.receiver
        self.sink = sink
        codec = fastpath.negotiated_codec(transceiver)
        if codec is None or codec.payloadType is None:
            raise ValueError("the publisher's m-line has no codec")
        self.codec = codec
        self.payload_type: int = codec.payloadType
        self.rtx_payload_type = fastpath.rtx_payload_type(transceiver, self.payload_type)
        self.clock_rate: int = codec.clockRate
        self.keyframe_start = keyframe_check(codec.mimeType)
        self.relay = MediaRelay()
        self.keyframes = KeyframeThrottle(keyframe_interval)
        self.closed = False
        self.subscriptions: tuple[Subscription, ...] = ()
        self.waiting = 0  # subscriptions ready to forward but waiting for a keyframe
        self.packets = 0  # RTP packets received from the publisher (read by metrics)
        self.bytes = 0
        self.retransmissions = 0  # of those, RTX packets that filled a hole
        self.last_timestamp = 0
        self.last_arrival = 0.0  # time.monotonic() of the last packet
        self.sender_report: tuple[int, int] | None = None  # publisher's (NTP, RTP) clock pair
        self._ring: list[RingEntry | None] = [None] * RING_SIZE
        self.log = bind(log, track=self.id[:8], kind=self.kind)
        self._loop = asyncio.get_running_loop()
        self._deferred: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        fastpath.tap_rtp(self.receiver, self._on_rtp)
        fastpath.tap_sender_reports(self.receiver, self._on_sender_report)
        self._drain = asyncio.ensure_future(self._read_always())

    # --- RTP fan-out (hot path) --------------------------------------------------------------

    def _on_rtp(self, packet: RtpPacket) -> None:
        pt = packet.payload_type
        payload = packet.payload
        if pt == self.payload_type:
            seq = packet.sequence_number
        elif pt == self.rtx_payload_type:
            if len(payload) < 2:
                return
            seq = (payload[0] << 8) | payload[1]
            held = self._ring[seq & RING_MASK]
            if held is not None and held[0] == seq:
                # Already have it: a padding probe (Chromium resends old packets to probe
                # bandwidth) or a late duplicate. aiortc's jitter buffer would take a packet
                # 100+ behind for a stream restart and stall: keep only its size, for REMB.
                packet.padding_size += len(payload)
                packet.payload = b""
                return
            payload = payload[2:]
            self.retransmissions += 1
        else:
            return
        timestamp = packet.timestamp
        marker = packet.marker
        self.packets += 1
        self.bytes += len(payload)
        self.last_timestamp = timestamp
        self.last_arrival = time.monotonic()
        self._ring[seq & RING_MASK] = (seq, timestamp, marker, payload)
        keyframe = False
        if (self.waiting > 0 or self.keyframes.outstanding) and self.keyframe_start(payload):
            keyframe = True
            self.keyframes.keyframe()
        for sub in self.subscriptions:
            sub.forward(seq, timestamp, marker, payload, keyframe)

    def packet(self, seq: int) -> RingEntry | None:
        """A recent packet by its (publisher) sequence number, for a retransmission."""
        entry = self._ring[seq & RING_MASK]
        return entry if entry is not None and entry[0] == seq else None

    def _on_sender_report(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self.sender_report = (ntp_timestamp, rtp_timestamp)

    def add(self, subscription: Subscription) -> None:
        self.subscriptions = (*self.subscriptions, subscription)

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)

    # --- encoded frames, for aiortc consumers -------------------------------------------------

    def subscribe(self) -> MediaStreamTrack:
        """A new consumer of this publication's encoded frames (`av.Packet`s)."""
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
        task = asyncio.ensure_future(self._send_pli_now())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_pli_now(self) -> None:
        if self.closed:
            return
        if not await rtc_receiver.send_pli(self.receiver):
            # No media yet, so no SSRC to name: ask again once the window has passed.
            self.request_keyframe()
        else:
            self.log.debug("keyframe requested")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for task in self._tasks:
            task.cancel()
        self.subscriptions = ()
        # Ending the source ends the relay and, through it, every consumer's track, even when
        # the receiver never started (and so will never end the track itself).
        rtc_receiver.end_track(self.receiver)
        self.log.info("unpublished")
