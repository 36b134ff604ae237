"""Subscription: one Publication forwarded to one Participant.

Owns the subscriber side of the media path, at the RTP level: which layer of the publication it
forwards, its own SSRC, sequence numbers and timestamps (the source's, shifted by offsets fixed
when forwarding starts and moved at each layer switch: sfu.continuity), the wait for a keyframe
(a decoder can only start there, and a layer switch happens only there), retransmissions from the
layer's ring when the subscriber NACKs, and keyframe requests: one as soon as its sender is up,
more while it waits, and whenever the subscriber reports picture loss.

Layers (mediasoup's preferred / target / current; ranks 0 = `l`, 1 = `m`, 2 = `h`):
- `preferred`: what the subscriber asked for with `set_layer` (`set_preferred()`); None is
  `auto`, the default.
- `auto_layer`: for `auto`, the highest rank the subscriber's bandwidth allows, told by bandwidth
  estimation with `set_auto_layer()`; None (until something estimates) means no limit: `auto`
  then gets the highest layer flowing.
- `desired`: the rank it wants: `preferred`, else `auto_layer`, else the top. What the publisher
  should keep sending for it (Publication.wanted()).
- `target`: the layer it will forward: the publication's best flowing layer for `desired`
  (Publication.best_layer), recomputed by `retarget()` when any of these or the flowing layers
  change. It waits for a keyframe of `target` (and asks for one: a PLI on that layer's SSRC).
- `current`: the layer it forwards now; becomes `target` at the first packet of that keyframe,
  where the old layer stops. `on_layer` (the participant's callback) hears of each change.

The subscriber's aiortc RTCRtpSender is kept for what it does well (SDP, feedback routing) but is
given an IdleTrack: packets go out through sfu.rtc.fastpath.RtpOutput, and sender reports from
`report()` (sfu.rtc.rtcp), cheaper than the sender's own RTCP task.
While waiting for a keyframe, the target layer hands it every packet (`try_start()`); from then
on the current layer calls `forward` (the output's `forward()`, or `forward_vp8()` for simulcast
VP8, which also shifts the picture numbering) directly, the hot path: no await, no logging, one
header and one send. Closed by its Participant; close() is idempotent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time

from .continuity import Offsets, Packet, after_switch
from .rtc import fastpath, rtcp
from .rtc import sender as rtc_sender
from .rtc.simulcast import LAYERS

if TYPE_CHECKING:
    from .layer import Layer, RingEntry
    from .publication import Publication

VIDEO_REPORT_INTERVAL = 1.0  # seconds, on average, between RTCP sender reports
AUDIO_REPORT_INTERVAL = 5.0
SPANS_KEPT = 8  # layer switches remembered, to map a late NACK back to its layer
# Padding resends at most this many of the newest packets: a receiver takes an older one for
# a stream restart (aiortc's jitter buffer: 100 packets back).
PAD_DEPTH = 16
TOP = len(LAYERS) - 1

# (sequence number, timestamp, marker, payload), in the publisher's numbering
Forward = Callable[[int, int, int, bytes], bool]


class ResumePoint(NamedTuple):
    """Where a subscriber's stream on an m-line stopped: the last packet's sequence number and
    timestamp as sent, and when it arrived (time.monotonic()). A track that takes the m-line
    over goes on from there, on the same SSRC (Participant reuses ended m-lines)."""

    seq: int
    timestamp: int
    at: float


class Span(NamedTuple):
    """A run of the subscriber's stream taken from one layer, from sequence number `start` on."""

    start: int
    layer: Layer
    offsets: Offsets


class Subscription:
    __slots__ = (
        "_cname",
        "_output",
        "_spans",
        "_stopped_at",
        "auto_layer",
        "closed",
        "current",
        "dropped",
        "forward",
        "live",
        "nacks",
        "next_report",
        "on_layer",
        "padded",
        "plis",
        "preferred",
        "publication",
        "ready",
        "resume_from",
        "retransmitted",
        "subscriber_id",
        "switches",
        "target",
        "track",
        "transceiver",
    )

    def __init__(self, publication: Publication, subscriber_id: str) -> None:
        self.publication = publication
        self.subscriber_id = subscriber_id
        # Forwarded under the publisher's own msid track id: every participant names a track
        # the same way, which track_state messages rely on.
        self.track = fastpath.IdleTrack(
            publication.kind, on_start=self.sender_started, track_id=publication.id
        )
        self.transceiver: RTCRtpTransceiver | None = None
        self.ready = False  # the subscriber's connection is up: we can send
        self.live = False  # forwarding (a keyframe has passed)
        self.closed = False
        self.forward: Forward = _not_ready  # the output's, once ready: the current layer calls it
        self._output: fastpath.RtpOutput | None = None
        self._cname = b""
        self._spans: list[Span] = []
        # The last packet forwarded before the publisher muted, and when: where resume() goes on.
        self._stopped_at: tuple[RingEntry, float] | None = None
        self.preferred: int | None = None
        self.auto_layer: int | None = None
        self.current: Layer | None = None
        self.target: Layer | None = None
        self.on_layer: Callable[[Subscription], None] | None = None
        self.next_report = 0.0  # event-loop time of the next RTCP sender report
        # Read by the metrics collector at scrape time (never a per-packet metrics call).
        self.dropped = 0  # packets not forwarded while waiting for a keyframe
        self.nacks = 0  # sequence numbers the subscriber asked to be resent
        self.retransmitted = 0
        self.plis = 0  # PLI/FIR from the subscriber
        self.padded = 0  # bytes sent to probe the subscriber's bandwidth (sfu.downlink)
        self.switches = 0  # layer switches done (not counting the start)
        # Set when this subscription takes over an m-line whose track ended: its stream goes
        # on from that one's (same SSRC), instead of random origins.
        self.resume_from: ResumePoint | None = None
        publication.add(self)
        self.retarget()

    def attach(self, transceiver: RTCRtpTransceiver) -> None:
        """Bind to the transceiver that carries this subscription (before it is offered)."""
        self.transceiver = transceiver
        sender = transceiver.sender
        fastpath.prefer_codec(transceiver, self.publication.codec.mimeType)
        rtc_sender.set_stream_id(sender, self.publication.publisher_id)
        rtc_sender.on_keyframe_request(sender, self.on_picture_loss)
        fastpath.on_retransmit_request(sender, self.on_nack)
        rtcp.stop_sender_reports(sender)  # report() sends them, from our own counts

    def sender_started(self) -> None:
        """The m-line is negotiated to send and the connection is up: bind an output to it.

        aiortc starts the sender (its first recv() of our IdleTrack) once DTLS is up and the
        m-line negotiated. A reused m-line's sender ran already, and its RTP loop ended with the
        old track: the participant calls this once the subscriber has taken the offer."""
        if self.closed or self.ready or self.transceiver is None:
            return
        codec = fastpath.negotiated_codec(self.transceiver)
        pt = codec.payloadType if codec is not None else None
        # Video carries abs-send-time (when negotiated: aiortc offers it), from which the
        # subscriber estimates its downlink and tells us by REMB (sfu.bwe).
        timed = self.publication.kind == "video"
        ast = fastpath.negotiated_extension(self.transceiver, fastpath.ABS_SEND_TIME_URI)
        output = fastpath.RtpOutput(self.transceiver.sender, pt or 0, ast if timed else None)
        rtx = fastpath.rtx_payload_type(self.transceiver, pt) if pt is not None else None
        if timed and rtx is not None:
            output.use_rtx(rtx, fastpath.rtx_ssrc(self.transceiver.sender))
        if pt is None or not output.bind():
            self.publication.log.warning(
                "subscriber %s: sender started but cannot send (codec %s)",
                self.subscriber_id,
                codec,
            )
            return
        self.ready_with(output)
        self._cname = rtcp.cname(self.transceiver.sender)

    def ready_with(self, output: fastpath.RtpOutput) -> None:
        """The subscriber's connection is up and this output sends to it: start forwarding."""
        self._output = output
        pub = self.publication
        self.forward = output.forward_vp8 if pub.rewrite_vp8 else output.forward
        self.ready = True
        pub.log.debug("subscriber %s: ready, waiting for a keyframe", self.subscriber_id)
        pub.start(self)

    @property
    def packets(self) -> int:
        """RTP packets sent (forwarded and resent)."""
        return self._output.packets if self._output is not None else 0

    @property
    def payload_bytes(self) -> int:
        return self._output.bytes if self._output is not None else 0

    # --- layers -------------------------------------------------------------------------------

    @property
    def desired(self) -> int:
        """The rank this subscription wants (see the module doc)."""
        if self.preferred is not None:
            return self.preferred
        return self.auto_layer if self.auto_layer is not None else TOP

    @property
    def requested(self) -> str:
        """What the subscriber asked for: `l`, `m`, `h` or `auto`."""
        return LAYERS[self.preferred] if self.preferred is not None else "auto"

    def set_preferred(self, rank: int | None) -> None:
        """The subscriber asked for a layer (a rank), or for `auto` (None)."""
        if rank == self.preferred:
            return
        self.preferred = rank
        self.retarget()
        self.publication.layers_changed()

    def set_auto_layer(self, rank: int | None) -> None:
        """Bandwidth estimation's ceiling for `auto` (None: none); ignored while a layer is
        preferred (but kept for when the subscriber goes back to `auto`)."""
        if rank == self.auto_layer:
            return
        self.auto_layer = rank
        if self.preferred is None:
            self.retarget()
            self.publication.layers_changed()

    def retarget(self) -> None:
        """Pick the layer to forward again; wait for its keyframe if it is a new one."""
        if self.closed:
            return
        target = self.publication.best_layer(self.desired)
        old = self.target
        if target is old:
            return
        if old is not None:
            old.remove_pending(self)
        self.target = target
        if target is not None and target is self.current:
            if self.forward not in target.forwarders and not self.publication.muted:
                # Back to the layer a resync stopped (it waited for another's keyframe since):
                # wait for this one's, or nothing would ever be forwarded again.
                target.add_pending(self)
                if self.live:
                    self.publication.request_keyframe(target)
            return
        if target is None:
            return
        if self.publication.muted:
            return  # resume() starts it
        target.add_pending(self)
        if self.live:
            self.publication.request_keyframe(target)
        elif self.ready:
            self.publication.start(self)

    # --- mute ---------------------------------------------------------------------------------

    def pause(self) -> None:
        """The publisher muted: not one packet more is forwarded (the subscriber's stream just
        stops, as a sender's would), and the stream's end is remembered for resume()."""
        current, target = self.current, self.target
        if current is not None:
            current.remove_forwarder(self.forward)
            newest = current.newest()
            if newest is not None and self.live:
                self._stopped_at = (newest, time.monotonic())
        if target is not None:
            target.remove_pending(self)

    def resume(self) -> None:
        """Unmuted: start again on the next keyframe of the target layer (asked for now), with
        the sequence numbers going on from the last packet forwarded and the timestamps from
        the time that passed, as after a layer switch."""
        target = self.target
        if self.closed or target is None:
            return
        target.add_pending(self)
        if self.ready:
            self.publication.request_keyframe(target)

    def resync(self) -> None:
        """The layer forwarded lost packets that no one can resend: nothing the subscriber gets
        until the next keyframe can be decoded. Stop forwarding and wait for that keyframe (asked
        for now); the stream then goes on from the last packet sent, as after a mute, so the
        subscriber sees no second hole."""
        if self.closed or not self.live or self.current is None:
            return
        self.pause()
        self.resume()

    # --- until a keyframe ----------------------------------------------------------------------

    def try_start(
        self, seq: int, timestamp: int, marker: int, payload: bytes, keyframe: bool
    ) -> None:
        """A packet of the target layer, while waiting for its keyframe to start or switch on
        (a decoder can only start there)."""
        target = self.target
        if not self.ready or target is None:
            self.dropped += not self.live
            return
        current = self.current
        if (
            current is not None
            and target.sender_report is None
            and current.sender_report is not None
        ):
            # A layer that just began has sent no sender report yet: without its clock pair the
            # keyframe's time on the old layer's clock is a guess, and a wrong one shifts lip
            # sync. Wait for it (a second at most, from Chromium), as mediasoup does; then ask.
            return
        if keyframe:
            self._switch(target, seq)
            return
        self.dropped += not self.live
        # Throttled: this only sends again once an earlier request looks lost.
        self.publication.request_keyframe(target)

    def _switch(self, target: Layer, first: int) -> None:
        """Forward `target` from its packet `first` on (the start of a keyframe, in its ring).

        As mediasoup and LiveKit do, a switch happens at the keyframe's first packet: the old
        layer stops there. Waiting for the whole keyframe instead would keep the old layer
        playing meanwhile, but the keyframe would then show a moment older than the frames just
        before it: its timestamp would have to be moved, and with it the sender reports'
        clock pair (what keeps audio and video in sync) at every switch."""
        output = self._output
        assert output is not None  # ready
        entry = target.packet(first)
        assert entry is not None, "a keyframe's first packet is in its layer's ring"
        _, timestamp, _, payload = entry
        old = self.current
        resume = self.resume_from
        if old is None and resume is not None:
            # The m-line's previous track stopped there: one stream goes on, on the same SSRC
            # (a jump back would fall in the subscriber's SRTP replay window).
            elapsed = int(max(0.0, time.monotonic() - resume.at) * self.publication.clock_rate)
            offsets = Offsets(
                (resume.seq + 1 - first) & 0xFFFF,
                (resume.timestamp + max(1, elapsed) - timestamp) & 0xFFFFFFFF,
            )
        elif old is None:
            # Random origins, as a sender of its own would pick (RFC 3550 5.1); the first
            # sequence number stays low so a long stream never wraps into SRTP's replay window
            # trouble. The picture numbering stays the source's.
            offsets = Offsets(
                (random.randrange(1 << 15) - first) & 0xFFFF,
                (random.getrandbits(32) - timestamp) & 0xFFFFFFFF,
            )
        else:
            offsets = self._continue_from(old, Packet(first, timestamp, payload))
            old.remove_forwarder(self.forward)
            if old is not target:
                self.switches += 1
        _apply(output, offsets)
        target.remove_pending(self)
        target.add_forwarder(self.forward)
        self.current = target
        self._spans.append(Span((first + offsets.seq) & 0xFFFF, target, offsets))
        del self._spans[:-SPANS_KEPT]
        self.live = True
        self.publication.log.debug(
            "subscriber %s: forwarding layer %s from seq %d", self.subscriber_id, target.name, first
        )
        self.forward(*entry)
        if self.on_layer is not None:
            self.on_layer(self)

    def _continue_from(self, old: Layer, key: Packet) -> Offsets:
        output = self._output
        assert output is not None
        current = _offsets(output)
        newest: RingEntry | None
        if self._stopped_at is not None:  # back from a mute: the stream stopped there
            newest, stopped = self._stopped_at
            self._stopped_at = None
        else:
            newest, stopped = old.newest(), old.last_arrival
        if newest is None:
            return current
        target = self.target
        assert target is not None
        pub = self.publication
        return after_switch(
            current,
            Packet(newest[0], newest[1], newest[3]),
            key,
            since_last=time.monotonic() - stopped,
            clock_rate=pub.clock_rate,
            old_report=old.sender_report,
            new_report=target.sender_report,
            vp8=pub.rewrite_vp8,
        )

    # --- feedback from the subscriber ------------------------------------------------------------

    def on_picture_loss(self) -> None:
        """The subscriber sent a PLI or FIR: its decoder needs a keyframe."""
        self.plis += 1
        self.publication.request_keyframe(self.current or self.target)

    def on_nack(self, seq: int) -> None:
        """The subscriber lost `seq` (its numbering): resend it if the ring still has it."""
        self.nacks += 1
        output = self._output
        if not self.live or output is None:
            return
        for span in reversed(self._spans):
            if (seq - span.start) & 0xFFFF < 0x8000:
                break
        else:
            return
        offsets = span.offsets
        entry = span.layer.packet((seq - offsets.seq) & 0xFFFF)
        if entry is None:
            return
        if span is self._spans[-1]:
            sent = self.forward(*entry)
        else:
            # A packet from before a switch goes out with the offsets of its time.
            now = _offsets(output)
            _apply(output, offsets)
            sent = self.forward(*entry)
            _apply(output, now)
        if sent:
            self.retransmitted += 1

    def pad(self, budget: int) -> int:
        """Send about `budget` bytes of padding to probe the subscriber's downlink (sfu.downlink):
        the newest packets of the current layer once more, on our RTX stream (RtpOutput.resend),
        which the subscriber drops as duplicates once its bandwidth estimator counted them.
        Returns the bytes sent (none without RTX)."""
        output = self._output
        span = self._spans[-1] if self._spans else None
        if not self.live or output is None or span is None:
            return 0
        layer = span.layer
        newest = layer.last_seq
        sent = 0
        back = 0
        while sent < budget and newest is not None and back < PAD_DEPTH:
            entry = layer.packet((newest - back) & 0xFFFF)
            back += 1
            if entry is not None and output.resend(*entry):
                sent += len(entry[3]) + 22
        self.padded += sent
        return sent

    # --- RTCP sender reports ------------------------------------------------------------------

    def report(self, now: float) -> None:
        """Called every REPORT_INTERVAL: follow the nominated ICE pair, and send an RTCP sender
        report when one is due.

        Its clock pair keeps lip sync: the publisher's own (NTP, RTP) pair for the layer
        forwarded, shifted into our timestamps, once the publisher has sent one; until then, now
        and our latest timestamp.
        """
        output = self._output
        layer = self.current
        if not self.live or output is None or layer is None:
            return
        output.refresh()  # the ICE pair forward() sends on, followed at this pace
        if now < self.next_report:
            return
        # Randomised over 0.5-1.5 intervals (RFC 3550 6.2): 1 s for video, 5 s for audio, as
        # libwebrtc and mediasoup space theirs (an audio stream's RTCP share is small).
        pub = self.publication
        interval = AUDIO_REPORT_INTERVAL if pub.kind == "audio" else VIDEO_REPORT_INTERVAL
        self.next_report = now + random.uniform(0.5, 1.5) * interval
        if layer.sender_report is not None:
            ntp, rtp = layer.sender_report
        else:
            ntp = current_ntp_time()
            elapsed = max(0.0, time.monotonic() - layer.last_arrival)
            rtp = layer.last_timestamp + int(elapsed * pub.clock_rate)
        packet = rtcp.sender_report(
            output.ssrc, ntp, rtp + output.ts_offset, output.packets, output.bytes, self._cname
        )
        output.send_rtcp(packet)

    def resume_point(self) -> ResumePoint | None:
        """Where the subscriber's stream stands: the last packet sent (None before any)."""
        output, layer = self._output, self.current
        if output is None or layer is None or not self.live:
            return self.resume_from
        newest: RingEntry | None
        if self._stopped_at is not None:
            newest, at = self._stopped_at
        else:
            newest, at = layer.newest(), layer.last_arrival
        if newest is None:
            return self.resume_from
        return ResumePoint(
            (newest[0] + output.seq_offset) & 0xFFFF,
            (newest[1] + output.ts_offset) & 0xFFFFFFFF,
            at,
        )

    def close(self) -> None:
        """Stop forwarding. The transceiver stays in the subscriber's connection (aiortc cannot
        remove an m-line; the participant reuses it for a later track), so it must not keep
        this subscription, and through it the publisher's receiver and connection, alive."""
        if self.closed:
            return
        self.closed = True
        self.ready = self.live = False
        self.publication.remove(self)
        self.forward = _not_ready
        self.current = self.target = None
        self._spans.clear()
        self.on_layer = None
        if self._output is not None:
            self._output.close()
        self.track.stop()
        if self.transceiver is not None:
            sender = self.transceiver.sender
            rtc_sender.on_keyframe_request(sender, _ignore)
            fastpath.on_retransmit_request(sender, _ignore_seq)
            sender.replaceTrack(None)


def _offsets(output: fastpath.RtpOutput) -> Offsets:
    return Offsets(output.seq_offset, output.ts_offset, output.picture_id_offset, output.tl0_offset)


def _apply(output: fastpath.RtpOutput, offsets: Offsets) -> None:
    output.seq_offset, output.ts_offset = offsets.seq, offsets.ts
    output.picture_id_offset, output.tl0_offset = offsets.picture_id, offsets.tl0


def _not_ready(seq: int, timestamp: int, marker: int, payload: bytes) -> bool:
    return False


def _ignore() -> None:
    pass


def _ignore_seq(seq: int) -> None:
    pass
