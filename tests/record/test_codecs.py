"""sfu.record.codecs: what a file's header needs, read from encoded frames."""

from __future__ import annotations

import pytest

from sfu.record import codecs
from tests.record.media import video


@pytest.mark.parametrize(("width", "height"), [(320, 240), (640, 360), (322, 182), (1280, 720)])
def test_picture_size_from_a_vp8_keyframe(width: int, height: int) -> None:
    first, second = video("vp8", 2, width, height)
    assert codecs.picture_size("video/VP8", first.data) == (width, height)
    assert codecs.picture_size("video/VP8", second.data) is None  # not a keyframe


@pytest.mark.parametrize(("width", "height"), [(320, 240), (322, 182), (1280, 720), (176, 144)])
def test_picture_size_from_an_h264_sps(width: int, height: int) -> None:
    first, second = video("h264", 2, width, height)  # odd sizes exercise the cropping
    assert codecs.picture_size("video/H264", first.data) == (width, height)
    assert codecs.picture_size("video/H264", second.data) is None
    assert codecs.h264_size(first.data[:12]) is None  # truncated: no answer, no exception


def test_opus_head_is_rfc7845() -> None:
    head = codecs.opus_head()
    assert head[:8] == b"OpusHead" and len(head) == 19
    assert head[8:10] == b"\x01\x02"  # version 1, 2 channels
    assert int.from_bytes(head[12:16], "little") == 48_000


def test_the_container_follows_the_codecs() -> None:
    assert codecs.container_for(["video/VP8", "audio/opus"]) == ("webm", ".webm")
    assert codecs.container_for(["audio/opus"]) == ("webm", ".webm")
    assert codecs.container_for(["video/H264", "audio/opus"]) == ("matroska", ".mkv")
    assert codecs.container_for(["audio/PCMU"]) == ("matroska", ".mkv")
    assert codecs.codec_info("video/AV1") is None
