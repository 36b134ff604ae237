"""Skip a hole in aiortc's video jitter buffer that no retransmission will fill.

aiortc's `JitterBuffer` hands a frame on only when every packet from its head up to the next
frame is there: one packet lost, and lost again when resent (or never resent: the server's ring
had not got it either), holds every later frame until 512 packets have piled up behind the hole,
7-15 s of video; so does the start of an outage shorter than that. `skip_lost_packets(receiver,
keyframe_check)` replaces a video receiver's buffer (the private `__jitter_buffer`, made in its
`__init__`) with one that, once its head has been stuck at a hole for HOLE_DEADLINE seconds while
packets keep coming, goes on from the next keyframe it holds, dropping what is before it; holding
none, it drops everything and starts again at the next keyframe's first packet (what came
meanwhile is kept: that packet may come last, resent), asking the sender for one (the receiver
sends a PLI when `add()` says so) at once and every PLI_INTERVAL while it waits.
A decoder then never sees a frame whose references were lost.

After an outage (nothing for OUTAGE seconds, then a packet that leaves a hole behind it: a
blackout, a dead path restarted) it does not wait the deadline: what was lost meanwhile is
seconds of video that retransmissions would bring back late if at all, so it goes on from a
keyframe at once, asking for one, as libwebrtc's receiver does when its NACK list overflows.
Waiting cost a Python receiver 0.5 s after each outage, before its first frame.

The check runs on the receiving side's event loop, once per packet: a walk over the packets from
the head, which the buffer itself does too (a few packets: one frame's, normally).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

HOLE_DEADLINE = 0.5  # seconds a hole may hold the buffer: NACKs answered, also on a busy machine
PLI_INTERVAL = 0.5  # seconds between keyframe requests while waiting for one
OUTAGE = 1.0  # seconds without a packet after which a hole is not waited for
VIDEO_CAPACITY = 512  # aiortc's, for video

KeyframeStart = Callable[[bytes], bool]  # an RTP payload: the first packet of a keyframe?


class SkippingJitterBuffer(JitterBuffer):
    def __init__(
        self,
        capacity: int,
        keyframe_start: Callable[[int], KeyframeStart],
        *,
        deadline: float = HOLE_DEADLINE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(capacity, is_video=True)
        self._keyframe_start = keyframe_start  # by payload type
        self._deadline = deadline
        self._clock = clock
        self._newest: int | None = None
        self._stuck_since: float | None = None
        self._waiting = False  # everything dropped: only a keyframe starts the buffer again
        self._last_pli = float("-inf")
        self._last_arrival: float | None = None
        self.skips = 0  # holes given up on (read by tests)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        seq = packet.sequence_number
        after_outage = self._last_arrival is not None and now - self._last_arrival >= OUTAGE
        self._last_arrival = now
        if self._waiting:
            return self._add_waiting(packet, now)
        newest = self._newest
        ahead = 0 if newest is None else uint16_add(seq, -newest)
        if newest is None or ahead < 0x8000:
            self._newest = seq
        pli, frame = super().add(packet)
        if frame is not None:
            self._stuck_since = None  # the head moved: a hole from now on is a new one
            return pli, frame
        if after_outage and 1 < ahead < 0x8000 and self._hole():
            return self._skip(now)  # the outage's hole: not worth waiting for
        if not self._stuck(now):
            return pli, frame
        return self._skip(now)

    def _stuck(self, now: float) -> bool:
        """Whether a hole has held the head, with packets behind it, for the deadline."""
        if not self._hole():  # a frame still coming in
            self._stuck_since = None
            return False
        if self._stuck_since is None:
            self._stuck_since = now
        return now - self._stuck_since >= self._deadline

    def _hole(self) -> bool:
        """Whether a packet is missing between the head and the newest packet (not so when
        aiortc's buffer, overrun by a long outage, started again at the newest)."""
        origin, newest = self._origin, self._newest
        assert origin is not None and newest is not None
        span = uint16_add(newest, -origin) + 1
        held = 0
        while held < span and self._packets[(origin + held) % self._capacity] is not None:
            held += 1
        return held < span

    def _skip(self, now: float) -> tuple[bool, JitterFrame | None]:
        origin, newest = self._origin, self._newest
        assert origin is not None and newest is not None
        self._stuck_since = None
        self.skips += 1
        span = uint16_add(newest, -origin) + 1
        hole = False
        for i in range(span):
            packet = self._packets[(origin + i) % self._capacity]
            if packet is None:
                hole = True
            elif hole and self._keyframe_start(packet.payload_type)(packet.payload):
                self.remove(i)
                return False, self._remove_frame(packet.sequence_number)
        self.remove(span)
        self._newest = None
        self._waiting = True
        self._last_pli = float("-inf")
        return self._pli_due(now), None

    def _add_waiting(self, packet: RtpPacket, now: float) -> tuple[bool, JitterFrame | None]:
        """Waiting for a keyframe: packets are kept (a keyframe's first packet may come last,
        resent), and the buffer starts again at the first packet of a keyframe."""
        seq, origin = packet.sequence_number, self._origin
        assert origin is not None
        delta = uint16_add(seq, -origin)
        if delta >= 0x8000:
            return self._pli_due(now), None  # from before the skip
        if delta >= self._capacity:
            self.remove(delta - self._capacity + 1)
            delta = self._capacity - 1
        self._packets[seq % self._capacity] = packet
        newest = self._newest
        if newest is None or uint16_add(seq, -newest) < 0x8000:
            self._newest = seq
        if not self._keyframe_start(packet.payload_type)(packet.payload):
            return self._pli_due(now), None
        self.remove(delta)
        self._waiting = False
        self._stuck_since = None
        return False, self._remove_frame(seq)

    def _pli_due(self, now: float) -> bool:
        if now - self._last_pli < PLI_INTERVAL:
            return False
        self._last_pli = now
        return True


def skip_lost_packets(
    receiver: RTCRtpReceiver, keyframe_check: Callable[[str], KeyframeStart]
) -> SkippingJitterBuffer:
    """Give a video receiver the skipping buffer; call before RTP flows (the `track` event).

    `keyframe_check(mime_type)` is the packet-level check for a codec (sfu.payload's).
    """
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    checks: dict[int, KeyframeStart] = {}

    def by_payload_type(payload_type: int) -> KeyframeStart:
        check = checks.get(payload_type)
        if check is None:
            codec = codecs.get(payload_type)
            check = keyframe_check(codec.mimeType if codec is not None else "")
            if codec is not None:
                checks[payload_type] = check
        return check

    old: JitterBuffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    buffer = SkippingJitterBuffer(old.capacity, by_payload_type)
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]
    return buffer


def installed(receiver: RTCRtpReceiver) -> SkippingJitterBuffer | None:
    """The receiver's skipping buffer, if it has one."""
    buffer = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
    return buffer if isinstance(buffer, SkippingJitterBuffer) else None
