"""Hook: sfu.rtc.packetizer packs encoded frames for a sender and never encodes."""

from __future__ import annotations

import fractions
from typing import Any

import av
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.rtc.packetizer import Packetizer, packer_for

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def packet(data: bytes, pts: int, clock: int) -> Any:
    p = av.Packet(data)
    p.pts = pts
    p.time_base = fractions.Fraction(1, clock)
    return p


def test_vp8_frames_are_split_with_a_payload_descriptor() -> None:
    pack = packer_for(VP8)
    payloads, timestamp = pack(packet(bytes(3000), 9000, 90000))
    assert timestamp == 9000
    assert len(payloads) == 3 and sum(len(p) for p in payloads) > 3000
    first, _ = VpxPayloadDescriptor.parse(payloads[0])
    second, _ = VpxPayloadDescriptor.parse(payloads[1])
    assert (first.partition_start, second.partition_start) == (1, 0)
    assert first.picture_id == second.picture_id == 0
    next_payloads, _ = pack(packet(bytes(10), 12000, 90000))
    assert VpxPayloadDescriptor.parse(next_payloads[0])[0].picture_id == 1


def test_audio_is_one_payload_at_the_codec_clock() -> None:
    payloads, timestamp = packer_for(OPUS)(packet(b"\x01\x02", 960, 48000))
    assert payloads == [b"\x01\x02"] and timestamp == 960


def test_a_raw_frame_is_refused() -> None:
    with pytest.raises(TypeError, match="never encodes"):
        Packetizer(transceiver=None).encode(av.VideoFrame(16, 16))  # type: ignore[arg-type]


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="no payload format"):
        packer_for(RTCRtpCodecParameters(mimeType="video/AV1", clockRate=90000, payloadType=45))
