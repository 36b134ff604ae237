"""Publication: one track a participant sends to the server, and its fan-out.

A publication has one or more layers (sfu.layer): three simulcast encodings `l`, `m`, `h`, each
an RTP stream of its own SSRC, or one plain stream. Two fan-outs hang off the publisher's
receiver:

- RTP, for subscribers: every packet of a layer is handed, in the same event-loop callback that
  received it, to each Subscription forwarding that layer, which rewrites its header and sends it
  (sfu.rtc.fastpath). Each layer keeps a ring of recent packets for the subscribers' NACKs.
- Encoded frames, for anything that wants media objects: the receiver's frames (sfu.rtc.receiver)
  go through an aiortc MediaRelay, so `frames()` works for a bot that decodes, a recorder or
  any aiortc consumer.

Until something subscribes to frames, the publication takes the lean path: aiortc's receiver
never sees a packet (no jitter buffer, no frames, no bandwidth estimator), the packets of its
known SSRCs come straight from the socket (sfu.rtc.ingress), and the publisher's feedback is
ours: NACKs for what it lost on the way (sfu.inbound), receiver reports, and one REMB for all
its layers that caps it at `max_bitrate`, as Janus's `bitrate` does. Its first packets always
come through aiortc's path, which is how the SSRCs are learnt: with simulcast, each SSRC is
latched to the layer its RID header extension names (the publisher stops sending it soon), an
RTX SSRC by its repaired RID. The first `frames()` hands everything back to aiortc's receiver,
for good (with simulcast, the top layer's packets only).

Layers and subscriptions (the seam sfu.subscription and bandwidth estimation build on):
- `flowing`: the ranks of the layers whose packets came in the last `LAYER_TIMEOUT` seconds,
  lowest first. A layer starts flowing on its first packet and stops after that silence
  (a paused encoding, a publisher that cut it for bandwidth).
- `wanted()`: the ranks the subscriptions want (each one's `desired` layer), flowing or not:
  what a publisher should keep sending (dynacast pauses the others).
- `best_layer(desired)`: the layer a subscription wanting `desired` gets: the highest flowing
  one at or below it, else the lowest flowing one above it (None while nothing flows).
- `on_layers(callback)`: called (with the publication) whenever `flowing` or `wanted()` may have
  changed; never per packet.

A gap the publisher could not fill (sfu.inbound's `unrepaired`) leaves what follows undecodable
until the next keyframe: every subscription forwarding that layer then waits for it, going on from
the last packet it sent, and one is asked for (a subscriber's own request would come later, or,
from aiortc, never). Checked on the report tick, never per packet.

Keyframe requests from all subscribers are throttled here, per publisher (a PLI for one layer
makes Chromium send keyframes on all three). Closed by its Participant; close() is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from signaling.backend import PublishedTrack
from signaling.log import ContextLogger, bind

from .keyframes import KeyframeThrottle
from .layer import Layer, RingEntry
from .payload import keyframe_check
from .rtc import fastpath, rtcp
from .rtc import receiver as rtc_receiver
from .rtc.ingress import RtpIngress
from .rtc.simulcast import LAYERS, packet_rid
from .speakers import AudioLevel

if TYPE_CHECKING:
    from .subscription import Subscription

logger = logging.getLogger(__name__)

# A subscription that becomes ready starts on the latest keyframe of its layer, replayed from the
# ring with what followed it, when that keyframe is at most this old and this many packets back:
# a burst this short beats waiting for a new keyframe (a request, the publisher's encoder, the
# trip). Older, it asks for a new one, as before.
REPLAY_MAX_AGE = 0.5  # seconds
REPLAY_MAX_PACKETS = 64
# A simulcast layer with no packet for this long no longer flows: its subscriptions move to one
# that does. Chromium sends every active encoding at 20-30 fps, and at a few fps when starved.
LAYER_TIMEOUT = 1.5  # seconds
TOP = len(LAYERS) - 1  # the rank of `h`, what `auto` wants until bandwidth says otherwise
# The source of a track whose publisher said none, or one that is not of its kind.
DEFAULT_SOURCES = {"video": "camera", "audio": "microphone"}
SOURCE_KINDS = {
    "camera": "video",
    "screen": "video",
    "microphone": "audio",
    "screen_audio": "audio",
}


def source_for(kind: str, declared: str | None) -> str:
    """The source a track of `kind` is announced with: the declared one if it fits the kind."""
    if declared is not None and SOURCE_KINDS.get(declared) == kind:
        return declared
    return DEFAULT_SOURCES.get(kind, "camera")


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
        rids: tuple[str, ...] = (),
        source: str | None = None,
        muted: bool = False,
        track_id: str | None = None,
    ) -> None:
        self.publisher_id = publisher_id
        self.track = track
        self.id: str = track_id or track.id  # the msid track id it is forwarded with
        self.kind: str = track.kind
        self.source = source_for(self.kind, source)
        self.muted = muted  # forwarding stopped: the publisher said so (Participant.mute)
        # Its packets' audio levels (sfu.speakers), added by the ingress; None for video.
        self.audio_level = AudioLevel() if self.kind == "audio" else None
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
        # Simulcast layers by rank (`l` first), or the one plain stream.
        self.simulcast = len(rids) > 1 and self.kind == "video"
        names: tuple[str | None, ...] = rids if self.simulcast else (None,)
        self.layers: tuple[Layer, ...] = tuple(
            Layer(self, LAYERS.index(rid) if rid is not None else 0, rid) for rid in names
        )
        self._by_rid = {layer.rid: layer for layer in self.layers}
        # Each layer numbers its VP8 pictures its own way: subscribers get them renumbered.
        self.rewrite_vp8 = self.simulcast and codec.mimeType.lower() == "video/vp8"
        self._by_ssrc: dict[int, Layer] = {}  # every SSRC latched (media and RTX)
        self.flowing: tuple[int, ...] = ()
        self._listeners: list[Callable[[Publication], None]] = []
        self.replays = 0  # subscriptions started on a replayed keyframe
        self.resyncs = 0  # unrepaired gaps that made subscriptions wait for a keyframe
        self.next_report = 0.0  # event-loop time of our next RR (+ REMB) to the publisher
        self.lean = True  # False once something subscribed to frames: aiortc receives
        self.log = bind(log, track=self.id[:8], kind=self.kind)
        self._loop = asyncio.get_running_loop()
        self._deferred: asyncio.TimerHandle | None = None
        fastpath.tap_rtp(self.receiver, self._on_rtp)
        fastpath.tap_sender_reports(self.receiver, self._on_sender_report)
        self._drain = asyncio.ensure_future(self._read_always())

    # --- RTP from aiortc's path ---------------------------------------------------------------

    def _on_rtp(self, packet: RtpPacket) -> bool:
        """A packet on aiortc's path: the first ones of each SSRC, or all once frames are wanted.

        Returns True when aiortc's receiver must not see it.
        """
        pt, ssrc = packet.payload_type, packet.ssrc
        if self.audio_level is not None and packet.extensions.audio_level is not None:
            self.audio_level.add(packet.extensions.audio_level[1])
        if pt != self.payload_type and pt != self.rtx_payload_type:
            return self.lean  # a payload type we do not forward
        layer = self._by_ssrc.get(ssrc)
        if layer is None:
            layer = self._latch(packet)
            if layer is None:
                return True  # a simulcast stream that has not said which layer it is (yet)
        if self.lean and not self.closed:
            # Registered again on every packet that still comes this way: after an ICE
            # restart, the ingress moves to the new connection.
            self.ingress.register(ssrc, layer.on_lean, self.audio_level)
            layer.on_lean(
                pt, packet.marker, packet.sequence_number, packet.timestamp, packet.payload
            )
            return True
        if pt == self.rtx_payload_type:
            payload = packet.payload
            if len(payload) >= 2 and layer.have((payload[0] << 8) | payload[1]):
                # A padding probe (Chromium resends old packets to probe bandwidth) or a late
                # duplicate. aiortc's jitter buffer would take a packet 100+ behind for a stream
                # restart and stall: keep only its size, for its bandwidth estimate.
                packet.padding_size += len(payload)
                packet.payload = b""
                return layer is not self.layers[-1]
        layer.on_lean(pt, packet.marker, packet.sequence_number, packet.timestamp, packet.payload)
        # aiortc's receiver assembles one stream into frames: the top layer's.
        return layer is not self.layers[-1]

    def _latch(self, packet: RtpPacket) -> Layer | None:
        """Which layer a new SSRC belongs to: the only one, or the one its RID names."""
        if self.simulcast:
            rid, repaired = packet_rid(packet)
            layer = self._by_rid.get(rid)
            if layer is None or repaired != (packet.payload_type == self.rtx_payload_type):
                return None
        else:
            layer = self.layers[0]
        replaced = layer.latch(packet.ssrc, packet.payload_type, packet.sequence_number)
        twcc = self.ingress.twcc
        if twcc is not None and packet.payload_type == self.payload_type:
            twcc.media_ssrc = packet.ssrc  # the feedback names a stream of the transport
        if replaced is not None:  # the publisher changed SSRC
            self.ingress.unregister(replaced)
            self._by_ssrc.pop(replaced, None)
        self._by_ssrc[packet.ssrc] = layer
        self.log.debug(
            "layer %s: SSRC %d (payload type %d)", layer.name, packet.ssrc, packet.payload_type
        )
        return layer

    def _on_sender_report(self, ssrc: int, ntp_timestamp: int, rtp_timestamp: int) -> None:
        layer = self._by_ssrc.get(ssrc)
        if layer is not None and layer.stream is not None and layer.stream.ssrc == ssrc:
            layer.sender_report = (ntp_timestamp, rtp_timestamp)
            layer.sender_report_at = time.monotonic()

    # --- state, as the others are told it ---------------------------------------------------

    def state(self) -> PublishedTrack:
        rids = tuple(layer.rid for layer in self.layers if layer.rid is not None)
        return PublishedTrack(self.publisher_id, self.id, self.kind, self.source, self.muted, rids)

    def set_muted(self, muted: bool) -> bool:
        """Stop forwarding (not one packet more), or start again: each subscription then waits
        for a keyframe, which is asked for at once. Returns whether anything changed."""
        if muted == self.muted or self.closed:
            return False
        self.muted = muted
        for sub in self.subscriptions:
            if muted:
                sub.pause()
            else:
                sub.resume()
        self.log.info("muted" if muted else "unmuted")
        return True

    # --- layers -------------------------------------------------------------------------------

    def layer_started(self, layer: Layer) -> None:
        """A layer's first packet, or its first after a silence (sfu.layer, on the packet)."""
        layer.flowing = True
        self._flowing_changed()

    def _check_flowing(self, now: float) -> None:
        stopped = False
        for layer in self.layers:
            if layer.flowing and now - layer.last_arrival > LAYER_TIMEOUT:
                layer.flowing = False
                stopped = True
        if stopped:
            self._flowing_changed()

    def _flowing_changed(self) -> None:
        self.flowing = tuple(layer.index for layer in self.layers if layer.flowing)
        if self.simulcast:
            self.log.info("layers flowing: %s", " ".join(LAYERS[i] for i in self.flowing) or "none")
        for sub in self.subscriptions:
            sub.retarget()
        self.layers_changed()

    def best_layer(self, desired: int) -> Layer | None:
        """The layer a subscription that wants rank `desired` gets (see the module doc)."""
        if not self.simulcast:
            return self.layers[0]
        flowing = [layer for layer in self.layers if layer.flowing]
        if not flowing:
            return None
        below = [layer for layer in flowing if layer.index <= desired]
        return below[-1] if below else flowing[0]

    def layer(self, index: int) -> Layer | None:
        return next((layer for layer in self.layers if layer.index == index), None)

    def wanted(self) -> set[int]:
        """The ranks the subscriptions want, flowing or not."""
        return {sub.desired for sub in self.subscriptions}

    def on_layers(self, callback: Callable[[Publication], None]) -> None:
        self._listeners.append(callback)

    def layers_changed(self) -> None:
        """`flowing` or `wanted()` may have changed: tell the listeners."""
        for callback in list(self._listeners):
            callback(self)

    # --- subscriptions ------------------------------------------------------------------------

    def add(self, subscription: Subscription) -> None:
        self.subscriptions = (*self.subscriptions, subscription)

    def remove(self, subscription: Subscription) -> None:
        self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)
        for layer in self.layers:
            layer.remove_pending(subscription)
            layer.remove_forwarder(subscription.forward)

    def start(self, subscription: Subscription) -> None:
        """A subscription is ready to send: start it on the latest keyframe of its layer if that
        is recent and the ring holds it, else ask the publisher for a new one."""
        layer = subscription.target
        if layer is None or self.muted:
            return  # nothing flows yet (the first packet of a layer retargets it), or muted
        recent = layer.recent_keyframe(REPLAY_MAX_AGE, REPLAY_MAX_PACKETS)
        if recent is not None and self.kind == "video":
            seq, span = recent
            first = layer.packet(seq)
            assert first is not None  # recent_keyframe() checked
            subscription.try_start(*first, True)
            for i in range(1, span + 1):
                entry = layer.packet((seq + i) & 0xFFFF)
                if entry is not None:  # a hole: the subscriber will NACK it
                    subscription.forward(*entry)
            self.replays += 1
            return
        self.request_keyframe(layer)

    # --- feedback to the publisher, on the lean path ---------------------------------------------

    def report(self, now: float) -> None:
        """Called every REPORT_INTERVAL: NACK again what is still missing, every 0.5-1.5 s
        (RFC 3550's spread) a receiver report for every layer, with one REMB for video; and
        which layers still flow."""
        if self.closed:
            return
        self._check_flowing(time.monotonic())
        streams = [(layer, layer.stream) for layer in self.layers if layer.stream is not None]
        if not self.lean or not streams:
            return
        for layer, stream in streams:
            again = stream.nack_again()
            if again and self.nack:
                self.send_nack(stream.ssrc, again)
            if stream.unrepaired != layer.unrepaired:
                layer.unrepaired = stream.unrepaired
                self._resync(layer)
        if now < self.next_report:
            return
        self.next_report = now + random.uniform(0.5, 1.5)
        blocks = []
        for layer, stream in streams:
            lsr = dlsr = 0
            if layer.sender_report is not None:
                lsr = (layer.sender_report[0] >> 16) & 0xFFFFFFFF
                dlsr = int((time.monotonic() - layer.sender_report_at) * 65536)
            blocks.append(
                rtcp.report_block(
                    stream.ssrc,
                    stream.fraction_lost(),
                    stream.lost,
                    stream.highest_sequence,
                    stream.jitter,
                    lsr,
                    dlsr,
                )
            )
        packet = rtcp.receiver_report_of(self.rtcp_ssrc, blocks)
        if self.kind == "video":
            # One REMB for all the layers: Chromium takes each REMB as a cap on its total rate.
            packet += rtcp.remb(self.rtcp_ssrc, self.max_bitrate, [s.ssrc for _, s in streams])
        self._send_rtcp(packet)

    def _resync(self, layer: Layer) -> None:
        """The layer lost packets for good: its subscribers wait for its next keyframe."""
        if self.kind != "video" or self.muted:
            return
        waiting = [sub for sub in self.subscriptions if sub.current is layer and sub.live]
        for sub in waiting:
            sub.resync()
        self.resyncs += bool(waiting)
        self.log.debug("layer %s: loss not repaired, %d resync", layer.name, len(waiting))

    def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self._send_rtcp(rtcp.nack(self.rtcp_ssrc, media_ssrc, lost))

    def _leave_ingress(self) -> None:
        for ssrc in self._by_ssrc:
            self.ingress.unregister(ssrc)

    def _send_rtcp(self, packet: bytes) -> None:
        fastpath.send_rtcp(self.ingress.dtls, packet)

    # --- encoded frames, for aiortc consumers -------------------------------------------------

    def frames(self) -> MediaStreamTrack:
        """A new consumer of this publication's encoded frames (`av.Packet`s); with simulcast,
        of its top layer."""
        if self.lean:
            # From now on aiortc's receiver sees every packet: it assembles the frames, and
            # sends the NACKs, reports and REMBs. Its decoder-less consumer starts on a keyframe.
            self.lean = False
            for layer in self.layers:
                layer.lean = False
            self._leave_ingress()
            self.log.debug("frames wanted: aiortc's receiver takes over")
            self.request_keyframe(self.layers[-1])
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

    def request_keyframe(self, layer: Layer | None = None) -> None:
        """Ask the publisher for a keyframe of this layer (default: every layer), throttled."""
        if self.closed or self.kind != "video":
            return
        mask = layer.bit if layer is not None else sum(layer.bit for layer in self.layers)
        delay = self.keyframes.request(self._loop.time(), mask)
        if delay is None:
            return
        if delay == 0.0:
            self._send_pli(mask)
        else:
            self._deferred = self._loop.call_later(delay, self._fire_deferred)

    def _fire_deferred(self) -> None:
        self._deferred = None
        self._send_pli(self.keyframes.fire(self._loop.time()))

    def _send_pli(self, mask: int) -> None:
        if self.closed:
            return
        ssrcs = [
            layer.stream.ssrc
            for layer in self.layers
            if layer.bit & mask and layer.stream is not None
        ]
        if not ssrcs:
            # No media yet, so no SSRC to name: the layer's first packets ask again.
            self.keyframes.outstanding &= ~mask
            return
        self._send_rtcp(b"".join(rtcp.pli(self.rtcp_ssrc, ssrc) for ssrc in ssrcs))
        self.log.debug("keyframe requested (%d SSRCs)", len(ssrcs))

    def packet(self, seq: int) -> RingEntry | None:
        """A recent packet of the only (or lowest) layer, by its sequence number."""
        return self.layers[0].packet(seq)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self._leave_ingress()
        self.subscriptions = ()
        for layer in self.layers:
            layer.clear()
        self._listeners.clear()
        # Ending the source ends the relay and, through it, every consumer's track, even when
        # the receiver never started (and so will never end the track itself).
        rtc_receiver.end_track(self.receiver)
        self.log.info("unpublished")

    # --- counters (read by metrics at scrape time) --------------------------------------------
    # Last in the class: mypy would take `bytes` in the annotations above for this property.

    @property
    def packets(self) -> int:
        """RTP packets received from the publisher, every layer."""
        return sum(layer.packets for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    @property
    def retransmissions(self) -> int:
        return sum(layer.retransmissions for layer in self.layers)
