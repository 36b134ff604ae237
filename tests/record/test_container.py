"""sfu.record.container: files that PyAV reads back whole, and that a crash leaves readable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import av
import pytest

from sfu.record.container import MediaFile, StreamSpec
from tests.record.media import Encoded, opus, video

VP8 = StreamSpec("video", "video/VP8", 90_000, 320, 240)
OPUS = StreamSpec("audio", "audio/opus", 48_000)


def write_interleaved(file: MediaFile, streams: list[list[Encoded]]) -> None:
    items = [
        (frame.pts / file.specs[i].clock_rate, i, frame)
        for i, frames in enumerate(streams)
        for frame in frames
    ]
    for _, index, frame in sorted(items, key=lambda item: (item[0], item[1])):
        file.write(index, frame.data, frame.pts, frame.keyframe)


def read(path: Path) -> dict[str, list[float]]:
    """Decode every frame; the times of each stream's frames, by kind."""
    times: dict[str, list[float]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is None:
                continue
            frame: Any
            for frame in packet.decode():
                times.setdefault(packet.stream.type, []).append(float(frame.time))
    return times


def test_vp8_and_opus_make_a_webm_that_decodes_whole(tmp_path: Path) -> None:
    path = tmp_path / "alice.webm"
    file = MediaFile(path, [VP8, OPUS])
    write_interleaved(file, [video("vp8", 90, 320, 240), opus(150)])  # 3 s each
    assert file.seconds() == pytest.approx(2.98, abs=0.02)
    file.close()
    file.close()  # idempotent
    with av.open(str(path)) as container:
        assert container.format.name.startswith("matroska,webm")
        v: Any = container.streams.video[0]
        a: Any = container.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == (
            "vp8",
            320,
            240,
        )
        # The header a player needs to set up its Opus decoder: OpusHead, stereo.
        assert a.codec_context.name == "opus" and a.codec_context.extradata[:8] == b"OpusHead"
        assert a.codec_context.channels == 2 and a.codec_context.sample_rate == 48_000
        assert container.duration == pytest.approx(2.98e6, abs=30_000)
    times = read(path)
    assert len(times["video"]) == 90 and len(times["audio"]) == 150
    assert times["video"][0] == 0 and times["audio"][0] == 0
    assert file.bytes_written == path.stat().st_size


def test_h264_goes_to_matroska(tmp_path: Path) -> None:
    path = tmp_path / "bob.mkv"
    spec = StreamSpec("video", "video/H264", 90_000, 322, 182)
    file = MediaFile(path, [spec, OPUS])
    write_interleaved(file, [video("h264", 60, 322, 182), opus(100)])
    file.close()
    with av.open(str(path)) as container:
        assert container.format.name.startswith("matroska")
        v: Any = container.streams.video[0]
        assert (v.codec_context.name, v.codec_context.width, v.codec_context.height) == (
            "h264",
            322,
            182,
        )
        assert v.codec_context.extradata  # avcC, from the first keyframe's SPS and PPS
    times = read(path)
    assert len(times["video"]) == 60 and len(times["audio"]) == 100


def test_a_file_left_unfinished_plays_up_to_its_last_cluster(tmp_path: Path) -> None:
    path = tmp_path / "crash.webm"
    file = MediaFile(path, [VP8, OPUS])
    write_interleaved(file, [video("vp8", 150, 320, 240), opus(250)])  # 5 s
    # What a SIGKILL leaves: the bytes on disk now, no trailer.
    copy = tmp_path / "copy.webm"
    shutil.copy(path, copy)
    file.close()
    times = read(copy)
    assert max(times["video"]) >= 5.0 - 2.0 and max(times["audio"]) >= 5.0 - 2.0
    with av.open(str(copy)) as container:
        audio: Any = container.streams.audio[0]
        assert audio.codec_context.extradata[:8] == b"OpusHead"


def test_frames_must_move_forward(tmp_path: Path) -> None:
    file = MediaFile(tmp_path / "x.webm", [OPUS])
    frames = opus(3)
    file.write(0, frames[1].data, 960, True)
    with pytest.raises(ValueError, match="after"):
        file.write(0, frames[0].data, 960, True)
    file.close()


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "taken.webm"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        MediaFile(path, [OPUS])
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["taken.webm"]


def test_the_extension_must_match_the_container(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match=r"\.mkv"):
        MediaFile(tmp_path / "h264.webm", [StreamSpec("video", "video/H264", 90_000)])
