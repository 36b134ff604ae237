"""Subscription: one Publication forwarded to one Participant.

Owns the subscriber side of the media path: the track its RTCRtpSender pulls encoded frames
from, gated so that nothing is forwarded before a keyframe (a decoder can only start there), and
the keyframe requests that go with it: one as soon as the subscriber's sender starts pulling (its
connection is up), again while it waits, and whenever the subscriber reports picture loss.
Reaches aiortc only through sfu.rtc. Closed by its Participant; close() is idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiortc import MediaStreamTrack, RTCRtpTransceiver

from .rtc import sender as rtc_sender
from .rtc.packetizer import use_packetizer

if TYPE_CHECKING:
    from .publication import Publication


class ForwardedTrack(MediaStreamTrack):
    """What the subscriber's sender reads: the publication's frames, from a keyframe on."""

    def __init__(self, subscription: Subscription, source: MediaStreamTrack) -> None:
        super().__init__()
        self.kind = source.kind
        self._subscription = subscription
        self._source = source

    async def recv(self) -> Any:
        sub = self._subscription
        if not sub.started:
            sub.started = True
            sub.publication.request_keyframe()
        source_recv = self._source.recv
        while True:
            packet: Any = await source_recv()  # an av.Packet, from sfu.rtc.receiver
            if sub.waiting_for_keyframe:
                if not packet.is_keyframe:
                    sub.dropped += 1
                    sub.publication.request_keyframe()
                    continue
                sub.waiting_for_keyframe = False
            sub.forwarded += 1
            return packet

    def stop(self) -> None:
        super().stop()
        self._source.stop()


class Subscription:
    def __init__(self, publication: Publication, subscriber_id: str) -> None:
        self.publication = publication
        self.subscriber_id = subscriber_id
        self.track = ForwardedTrack(self, publication.subscribe())
        self.transceiver: RTCRtpTransceiver | None = None
        self.started = False
        self.waiting_for_keyframe = True
        self.forwarded = 0  # encoded frames
        self.dropped = 0  # frames dropped while waiting for a keyframe
        # Read by the metrics collector at scrape time (never a per-packet metrics call).
        self.packets = 0  # RTP packets forwarded
        self.bytes = 0  # RTP payload bytes forwarded
        self.nacks = 0  # NACK packets from the subscriber
        self.plis = 0  # PLI/FIR from the subscriber
        self.closed = False

    def attach(self, transceiver: RTCRtpTransceiver) -> None:
        """Bind to the sender that carries this subscription to the subscriber."""
        self.transceiver = transceiver
        use_packetizer(transceiver)
        rtc_sender.set_stream_id(transceiver.sender, self.publication.publisher_id)
        rtc_sender.on_keyframe_request(transceiver.sender, self.on_picture_loss)

    def on_picture_loss(self) -> None:
        """The subscriber sent a PLI or FIR: its decoder needs a keyframe."""
        self.plis += 1
        self.publication.request_keyframe()

    def close(self) -> None:
        """Stop forwarding. The transceiver stays in the subscriber's connection (aiortc cannot
        remove an m-line), so it must not keep this subscription, and through it the
        publisher's receiver and connection, alive."""
        if self.closed:
            return
        self.closed = True
        self.track.stop()
        if self.transceiver is not None:
            rtc_sender.on_keyframe_request(self.transceiver.sender, _ignore)
            self.transceiver.sender.replaceTrack(None)


def _ignore() -> None:
    pass
