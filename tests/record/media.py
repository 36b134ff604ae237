"""Encoded frames for the recording tests, made by PyAV's encoders (the tests may encode; the
recorder may not)."""

from __future__ import annotations

import fractions
import math
from dataclasses import dataclass
from typing import Any

import av


@dataclass(frozen=True)
class Encoded:
    data: bytes
    pts: int  # in the codec's RTP clock: 90 kHz video, 48 kHz Opus
    keyframe: bool


def video(codec: str, count: int, width: int, height: int, fps: int = 30) -> list[Encoded]:
    """`count` frames of libvpx (VP8) or libx264 (H.264, Annex B, no B-frames)."""
    encoder: Any = av.CodecContext.create({"vp8": "libvpx", "h264": "libx264"}[codec], "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = fractions.Fraction(1, fps)
    if codec == "h264":
        encoder.options = {"bf": "0", "g": str(fps), "tune": "zerolatency"}
    else:
        encoder.options = {"deadline": "realtime", "cpu-used": "8", "g": str(fps)}
    frames: list[Encoded] = []
    for i in range(count + 8):
        frame = av.VideoFrame(width, height, "yuv420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 7 + n * 50) % 256]) * plane.buffer_size)
        frame.pts = i
        for packet in encoder.encode(frame if i < count else None):
            frames.append(Encoded(bytes(packet), packet.pts * 90_000 // fps, packet.is_keyframe))
        if i >= count:
            break
    return frames[:count]


def opus(count: int, tone: bool = False) -> list[Encoded]:
    """`count` 20 ms Opus frames (stereo, 48 kHz): silence, or a 1 kHz tone."""
    encoder: Any = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
    encoder.open()
    frames: list[Encoded] = []
    for i in range(count + 10):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(_tone(i) if tone else bytes(960 * 4))
        frame.sample_rate, frame.pts = 48_000, i * 960
        for packet in encoder.encode(frame):
            frames.append(Encoded(bytes(packet), len(frames) * 960, True))  # no pre-skip
    return frames[:count]


def _tone(index: int) -> bytes:
    out = bytearray()
    for n in range(960):
        value = int(8000 * math.sin(2 * math.pi * 1000 * (index * 960 + n) / 48_000))
        out += value.to_bytes(2, "little", signed=True) * 2
    return bytes(out)
