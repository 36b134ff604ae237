"""A publisher track that sends pre-encoded Opus: no encoder runs while it sends.

`encode_opus_clip()` encodes a short tone once (20 ms frames, 48 kHz); `AudioClipTrack.recv()`
returns its packets in a loop, paced to the wall clock, with pts rewritten on a 1/48000 time
base. aiortc's RTCRtpSender sends what is not an `av.Frame` through the codec's `pack()`, as
loadtest.clip does for VP8. Every Opus packet stands alone, so the loop needs no keyframe.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, what WebRTC endpoints send
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


@dataclass(frozen=True)
class EncodedAudioClip:
    packets: tuple[bytes, ...]  # one Opus packet per 20 ms
    bit_rate: int

    @property
    def packet_rate(self) -> float:
        return SAMPLE_RATE / FRAME_SAMPLES


def encode_opus_clip(*, bit_rate: int = 32_000, seconds: float = 1.0) -> EncodedAudioClip:
    """Encode `seconds` of a 440 Hz tone to mono Opus at `bit_rate`."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bit_rate
    codec.time_base = TIME_BASE
    codec.options = {"application": "voip"}
    # libopus takes exactly one 20 ms frame at a time; lavfi's frames are 1024 samples.
    resampler = av.AudioResampler(
        format="s16", layout="mono", rate=SAMPLE_RATE, frame_size=FRAME_SAMPLES
    )
    packets: list[bytes] = []
    source_spec = f"sine=frequency=440:sample_rate={SAMPLE_RATE}:duration={seconds}"
    with av.open(source_spec, format="lavfi") as source:
        for frame in source.decode(audio=0):
            for chunk in resampler.resample(frame):
                packets.extend(bytes(p) for p in codec.encode(chunk))
    for chunk in resampler.resample(None):
        packets.extend(bytes(p) for p in codec.encode(chunk))
    packets.extend(bytes(p) for p in codec.encode(None))
    if not packets:
        raise RuntimeError("libopus produced no packet")
    return EncodedAudioClip(tuple(packets), bit_rate)


class AudioClipTrack(MediaStreamTrack):
    """Sends an EncodedAudioClip in a loop, one packet every 20 ms."""

    kind = "audio"

    def __init__(self, clip: EncodedAudioClip) -> None:
        super().__init__()
        self.clip = clip
        self.frames_sent = 0
        self.bytes_sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self.frames_sent * FRAME_SAMPLES / SAMPLE_RATE
            if now - due > 0.5:
                # The event loop stalled: do not burst half a second of audio to catch up.
                self._start = now - self.frames_sent * FRAME_SAMPLES / SAMPLE_RATE
                due = now
            await asyncio.sleep(max(0.0, due - now))
        data = self.clip.packets[self.frames_sent % len(self.clip.packets)]
        packet = av.Packet(data)
        packet.pts = self.frames_sent * FRAME_SAMPLES
        packet.time_base = TIME_BASE
        self.frames_sent += 1
        self.bytes_sent += len(data)
        return packet
