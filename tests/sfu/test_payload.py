"""Packet-level keyframe detection, as input -> output tables."""

from __future__ import annotations

import pytest

from sfu.payload import h264_keyframe_start, keyframe_check, vp8_keyframe_start

# VP8 payload descriptors (RFC 7741) followed by the first byte of the VP8 payload header.
KEY, DELTA = 0x10, 0x11  # payload header byte 0: P bit clear = key frame


@pytest.mark.parametrize(
    ("payload", "start"),
    [
        (bytes([0x10, KEY, 0x02, 0x00]), True),  # S=1, PID=0, no extensions
        (bytes([0x10, DELTA, 0x02, 0x00]), False),  # delta frame
        (bytes([0x00, KEY, 0x02]), False),  # not the start of a partition
        (bytes([0x11, KEY]), False),  # partition 1
        (bytes([0x90, 0x80, 0x05, KEY]), True),  # X, I with 7-bit picture id
        (bytes([0x90, 0x80, 0x85, 0x01, KEY]), True),  # 15-bit picture id
        (bytes([0x90, 0x80, 0x85, 0x01, DELTA]), False),
        (bytes([0x90, 0xE0, 0x85, 0x01, 0x07, 0x40, KEY]), True),  # I, L, T
        (bytes([0x90, 0x80]), False),  # truncated
        (b"", False),
    ],
)
def test_vp8(payload: bytes, start: bool) -> None:
    assert vp8_keyframe_start(payload) is start


@pytest.mark.parametrize(
    ("payload", "start"),
    [
        (bytes([0x67, 0x42]), True),  # SPS
        (bytes([0x65, 0x88]), True),  # IDR slice
        (bytes([0x41, 0x9A]), False),  # non-IDR slice
        (bytes([0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xCE]), True),  # STAP-A SPS, PPS
        (bytes([0x78, 0x00, 0x02, 0x41, 0x9A]), False),  # STAP-A of a non-IDR slice
        (bytes([0x7C, 0x85, 0x88]), True),  # FU-A start of an IDR slice
        (bytes([0x7C, 0x05, 0x88]), False),  # FU-A continuation
        (bytes([0x7C, 0x81, 0x9A]), False),  # FU-A start of a non-IDR slice
        (b"", False),
    ],
)
def test_h264(payload: bytes, start: bool) -> None:
    assert h264_keyframe_start(payload) is start


def test_audio_starts_anywhere_and_unknown_video_never() -> None:
    assert keyframe_check("audio/opus")(b"\x00") is True
    assert keyframe_check("video/AV1")(b"\x00") is False
    assert keyframe_check("video/VP8") is vp8_keyframe_start
