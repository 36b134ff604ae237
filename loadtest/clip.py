"""A publisher that sends pre-encoded VP8 at a fixed bitrate: no encoder runs while it sends.

`encode_clip()` encodes a short `testsrc2` clip once with libvpx in CBR (first frame a keyframe,
no other keyframe: the keyframe interval is longer than the clip). `ClipTrack.recv()` returns
its frames as `av.Packet`s, paced to the wall clock at the clip's frame rate with pts rewritten
on a 1/90000 time base; aiortc's RTCRtpSender sends anything that is not an `av.Frame` through
the codec's `pack()`, so nothing is encoded again.

The clip loops over frames 1..n-1: its keyframe is sent first and then only when asked for.
The stream stays at the target bitrate, and a decoder would see a jump (and a little
corruption) at each loop, which decoder-less subscribers ignore.

Keyframe requests: a PLI or FIR from the server reaches the publisher's
`RTCRtpSender._send_keyframe`, which only sets a flag an *encoder* reads. `hook_keyframe_requests`
replaces that attribute (sfu.rtc.sender.on_keyframe_request) with `ClipTrack.request_keyframe`,
which makes the next frame sent the clip's keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaStreamError

from sfu.rtc.sender import on_keyframe_request


@dataclass(frozen=True)
class EncodedClip:
    frames: tuple[bytes, ...]  # VP8 frames; frames[0] is the only keyframe
    fps: int
    width: int
    height: int
    bit_rate: int

    @property
    def loop_bitrate(self) -> float:
        """Bits per second of the looped part (frames 1..n-1), what the publisher sends."""
        loop = self.frames[1:]
        return sum(len(f) for f in loop) * 8 * self.fps / len(loop)


def vp8_is_keyframe(data: bytes) -> bool:
    return bool(data) and not data[0] & 0x01  # RFC 6386 9.1: frame tag bit 0 is 0


def encode_clip(
    *,
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    bit_rate: int = 1_000_000,
    frames: int = 90,
) -> EncodedClip:
    """Encode `frames` frames of FFmpeg's `testsrc2` to VP8 at a constant `bit_rate`."""
    if frames < 2:
        raise ValueError("a clip needs at least 2 frames (one keyframe, one to loop)")
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base = fractions.Fraction(1, fps)
    codec.framerate = fractions.Fraction(fps, 1)
    codec.bit_rate = bit_rate
    codec.gop_size = 100_000  # no keyframe inside the clip but the first
    codec.qmin, codec.qmax = 2, 56
    codec.options = {  # aiortc's own VP8 settings: CBR (minrate = maxrate = bit_rate)
        "bufsize": str(bit_rate),
        "minrate": str(bit_rate),
        "maxrate": str(bit_rate),
        "deadline": "realtime",
        "cpu-used": "4",
        "lag-in-frames": "0",
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "static-thresh": "1",
        "partitions": "0",
    }
    encoded: list[bytes] = []
    with av.open(
        f"testsrc2=size={width}x{height}:rate={fps},format=yuv420p", format="lavfi"
    ) as source:
        for index, frame in enumerate(source.decode(video=0)):
            if index == frames:
                break
            frame.pts, frame.time_base = index, codec.time_base
            # lavfi marks every frame as an I picture, and FFmpeg's libvpx wrapper turns that
            # into a forced keyframe: without this, every frame would be a keyframe.
            frame.pict_type = av.video.frame.PictureType.NONE
            encoded.extend(bytes(p) for p in codec.encode(frame))
    encoded.extend(bytes(p) for p in codec.encode(None))
    keyframes = [i for i, data in enumerate(encoded) if vp8_is_keyframe(data)]
    if len(encoded) != frames or keyframes != [0]:
        raise RuntimeError(f"expected {frames} frames, keyframe at 0 only; got {keyframes}")
    return EncodedClip(tuple(encoded), fps, width, height, bit_rate)


class ClipTrack(MediaStreamTrack):
    """Sends an EncodedClip in a loop at its frame rate; the keyframe again when asked."""

    kind = "video"

    def __init__(self, clip: EncodedClip) -> None:
        super().__init__()
        self.clip = clip
        self.frames_sent = 0
        self.keyframes_sent = 0
        self.keyframe_requests = 0
        self.bytes_sent = 0
        self.late_resets = 0  # times the loop fell so far behind that pacing restarted
        self._index = 0
        self._start: float | None = None
        self._ticks = 0  # frames due since _start

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._index = 0

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        fps = self.clip.fps
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._ticks / fps
            if now - due > 0.5:
                # The event loop stalled: do not burst half a second of frames to catch up.
                self._start, self._ticks, due = now, 0, now
                self.late_resets += 1
            await asyncio.sleep(max(0.0, due - now))
        data = self.clip.frames[self._index]
        self._index = self._index + 1 if self._index + 1 < len(self.clip.frames) else 1
        packet = av.Packet(data)
        packet.pts = self.frames_sent * VIDEO_CLOCK_RATE // fps
        packet.time_base = VIDEO_TIME_BASE
        self._ticks += 1
        self.frames_sent += 1
        self.bytes_sent += len(data)
        self.keyframes_sent += vp8_is_keyframe(data)
        return packet


# A simulcast layer's size and bitrate: the top layer's divided by these (the page's ratios:
# 1/4, 1/2 and full size at 150, 500 and 1500 kbps).
LAYER_SCALES = {"l": 4, "m": 2, "h": 1}
BITRATE_SHARES = {"l": 0.1, "m": 1 / 3, "h": 1.0}


def encode_layers(
    *, width: int, height: int, fps: int, bit_rate: int, frames: int, simulcast: bool
) -> tuple[EncodedClip, ...]:
    """The clip of that size and bitrate; with `simulcast`, three: l, m, h (lowest first),
    h that clip and the others smaller and cheaper by LAYER_SCALES and BITRATE_SHARES."""
    rids = ("l", "m", "h") if simulcast else ("h",)
    return tuple(
        encode_clip(
            width=max(16, width // LAYER_SCALES[rid] // 2 * 2),
            height=max(16, height // LAYER_SCALES[rid] // 2 * 2),
            fps=fps,
            bit_rate=int(bit_rate * BITRATE_SHARES[rid]),
            frames=frames,
        )
        for rid in rids
    )


def hook_keyframe_requests(sender: RTCRtpSender, track: ClipTrack) -> None:
    """Answer the PLIs/FIRs that reach `sender` by sending the clip's keyframe next."""
    on_keyframe_request(sender, track.request_keyframe)
