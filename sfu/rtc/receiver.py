"""Take encoded frames from an RTCRtpReceiver before any decoder.

aiortc's receiver depayloads RTP, reassembles frames in its jitter buffer, then puts
`(codec, JitterFrame)` on a private queue that a decoder thread consumes. We replace that queue
with a sink that wraps each frame as an `av.Packet` (pts = RTP timestamp from the first frame,
time_base = 1/clock rate, keyframe flag from the payload) and hands it straight to the receiver's
track, on the event loop. No decoder is ever created.

aiortc still starts its decoder thread in `receive()`; the sink's `get()` parks that thread until
the receiver stops, then lets it exit the way it always does (ending the track).
"""

from __future__ import annotations

import fractions
import threading
from typing import Any

import av
from aiortc.rtcrtpreceiver import RTCRtpReceiver

_TIME_BASES: dict[int, fractions.Fraction] = {}


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """True when a decoder can start at this encoded frame."""
    kind, _, name = mime_type.lower().partition("/")
    if kind == "audio":
        return True
    if name == "vp8":
        # VP8 frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 for a key frame.
        return bool(data) and not data[0] & 0x01
    if name == "h264":
        return _h264_has_idr(data)
    return False


def _h264_has_idr(data: bytes) -> bool:
    # aiortc's H.264 depayloader emits Annex B: NAL units after 00 00 01 start codes.
    pos = data.find(b"\x00\x00\x01")
    while pos != -1 and pos + 3 < len(data):
        nal_type = data[pos + 3] & 0x1F
        if nal_type in (5, 7):  # IDR slice, SPS
            return True
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return False


def _time_base(clock_rate: int) -> fractions.Fraction:
    # One shared Fraction per clock rate: aiortc's convert_timebase short-circuits on equality.
    tb = _TIME_BASES.get(clock_rate)
    if tb is None:
        tb = _TIME_BASES[clock_rate] = fractions.Fraction(1, clock_rate)
    return tb


class EncodedFrameSink:
    """Stands in for the receiver's decoder queue (a `queue.Queue`)."""

    def __init__(self, receiver: RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._stopped = threading.Event()
        self.frames = 0
        self.keyframes = 0

    # Called by RTCRtpReceiver._handle_rtp_packet on the event loop.
    def put(self, item: Any) -> None:
        if item is None:  # the receiver is stopping its decoder thread
            self._stopped.set()
            return
        codec, frame = item
        track: Any = self._receiver.track
        if track is None:
            return
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp
        packet.time_base = _time_base(codec.clockRate)
        keyframe = is_keyframe(codec.mimeType, frame.data)
        packet.is_keyframe = keyframe
        self.frames += 1
        self.keyframes += keyframe
        track._queue.put_nowait(packet)

    # Called by aiortc's decoder thread: park it until the receiver stops.
    def get(self) -> None:
        self._stopped.wait()
        return None


def capture_encoded_frames(receiver: RTCRtpReceiver) -> EncodedFrameSink:
    """Make `receiver.track.recv()` return encoded `av.Packet`s; call before RTP flows.

    Must run before `receiver.receive()` (i.e. from the peer connection's `track` event).
    """
    if decoding_started(receiver):
        raise RuntimeError("the receiver has already started its decoder")
    sink = EncodedFrameSink(receiver)
    receiver._RTCRtpReceiver__decoder_queue = sink  # type: ignore[attr-defined]
    return sink


def end_track(receiver: RTCRtpReceiver) -> None:
    """End the receiver's track now: its consumers (the relay) see the end of stream."""
    track: Any = receiver.track
    if track is not None and track.readyState == "live":
        track._queue.put_nowait(None)


def release_track(receiver: RTCRtpReceiver) -> None:
    """End the receiver's track and let it go: the m-line stopped sending (the server ended
    that forwarded track). If the server reuses the m-line for another track, aiortc makes the
    receiver a new one (it does when the receiver has none) and fires a `track` event."""
    end_track(receiver)
    # What the jitter buffer holds is the old track's: the next track starts empty.
    buffer: Any = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    buffer.remove(buffer.capacity)
    buffer._origin = None
    track: Any = receiver.track
    if track is not None:
        # The decoder thread (decoded frames) writes to the queue of the receiver's first
        # track for good: remember it, follow_new_track() points it at the next one.
        if getattr(receiver, _DECODED_INTO, None) is None:
            setattr(receiver, _DECODED_INTO, track._queue)
        receiver._track = None


def follow_new_track(receiver: RTCRtpReceiver) -> None:
    """Frames from now on go to the receiver's new track (after release_track()): encoded
    frames do already (the sink reads `receiver.track`); decoded ones are redirected here."""
    track: Any = receiver.track
    first: Any = getattr(receiver, _DECODED_INTO, None)
    if track is not None and first is not None and first is not track._queue:
        first.put = track._queue.put


_DECODED_INTO = "_aiosfu_decoded_into"


def decoding_started(receiver: RTCRtpReceiver) -> bool:
    """Whether `receive()` has run (and started aiortc's decoder thread)."""
    return getattr(receiver, "_RTCRtpReceiver__decoder_thread", None) is not None


def rtp_counts(receiver: RTCRtpReceiver) -> tuple[int, int, int]:
    """(media packets received, media packets expected, RTX packets received), all SSRCs.

    getStats() cannot give these: aiortc reports every inbound SSRC of a receiver under one id,
    so a retransmission stream hides the media stream's counters.
    """
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    received = expected = rtx = 0
    for ssrc, stream in list(streams.items()):
        if ssrc in rtx_ssrcs:
            rtx += stream.packets_received
        elif stream.max_seq is not None:
            received += stream.packets_received
            expected += stream.packets_expected
    return received, expected, rtx


def rtp_to_pts(receiver: RTCRtpReceiver, rtp_timestamp: int) -> int | None:
    """The frame pts that an RTP timestamp of the receiver's stream stands for; None before the
    first frame.

    aiortc rebases frame timestamps to start at 0 and unwraps 32-bit wraparound (its private
    TimestampMapper, state `_origin` and `_last`); a timestamp from elsewhere (a sender report)
    is placed within 2**31 of the latest frame's, then rebased the same way.
    """
    mapper: Any = receiver._RTCRtpReceiver__timestamp_mapper  # type: ignore[attr-defined]
    origin, last = mapper._origin, mapper._last
    if origin is None or last is None:
        return None
    delta = ((rtp_timestamp - last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    return int(last - origin + delta)


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send the remote a PLI for the receiver's media stream; False before any RTP arrived.

    aiortc sends PLIs itself only when its decoder fails, and a receiver that captures encoded
    frames has none.
    """
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    media = [ssrc for ssrc in streams if ssrc not in rtx_ssrcs]
    if not media:
        return False
    await receiver._send_rtcp_pli(media[0])
    return True
