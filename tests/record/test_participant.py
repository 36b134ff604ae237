"""sfu.record.participant: which frames go in which file, and where, from tracks fed by hand
(encoded by PyAV, timed by hand-made sender reports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import av
import pytest

from sfu.client import RemoteTrack
from sfu.record.participant import ParticipantRecording, TrackRecording
from sfu.senderclock import NTP_UNIX_OFFSET, SenderClock
from tests.record.media import Encoded, opus, video
from tests.record.test_container import read

T0 = 1_700_000_000.0  # the publisher's clock when its first frame was captured


class Publisher:
    """One participant's tracks, and a recording fed the way the Recorder feeds it."""

    def __init__(self, directory: Path, settle: float = 2.0) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.keyframe_requests: list[str] = []
        self.recording = ParticipantRecording(
            "peer1",
            "Alice Ö",
            directory,
            lambda type_, **data: self.events.append((type_, data)),
            lambda remote: self.keyframe_requests.append(remote.mid),
            settle=settle,
        )
        self.mids = 0

    def track(self, kind: str, codec: str) -> TrackRecording:
        self.mids += 1
        clock = SenderClock(90_000 if kind == "video" else 48_000, rtp_to_pts=lambda rtp: rtp)
        remote = RemoteTrack("peer1", kind, cast(Any, None), str(self.mids), codec=codec)
        remote.clock = clock
        track = self.recording.add(remote)
        assert track is not None
        return track

    @staticmethod
    def report(track: TrackRecording, pts: int, capture: float) -> None:
        ntp = int((capture + NTP_UNIX_OFFSET) * (1 << 32))
        track.remote.clock.add(ntp, pts)

    def send(
        self,
        track: TrackRecording,
        frame: Encoded,
        start: float,
        delay: float = 0.05,
        arrival: float | None = None,
    ) -> None:
        """A frame captured `start` s plus its pts after T0, arriving `delay` s later."""
        rate = track.remote.clock.clock_rate
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        packet.is_keyframe = frame.keyframe
        when = T0 + start + frame.pts / rate + delay if arrival is None else arrival
        self.recording.frame(track, packet, when)

    def files(self, type_: str = "file_closed") -> list[dict[str, Any]]:
        return [data for t, data in self.events if t == type_]


def interleave(*tracks: tuple[TrackRecording, list[Encoded], float]) -> list[Any]:
    """(track, frame, start) in capture order."""
    items = [
        (start + f.pts / t.remote.clock.clock_rate, n, t, f, start)
        for n, (t, frames, start) in enumerate(tracks)
        for f in frames
    ]
    return [(t, f, s) for _, _, t, f, s in sorted(items, key=lambda i: (i[0], i[1]))]


def test_audio_and_video_at_their_true_distance(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    cam, mic = pub.track("video", "video/VP8"), pub.track("audio", "audio/opus")
    pub.report(cam, 0, T0)
    pub.report(mic, 0, T0 + 0.3)  # the microphone's first frame came 0.3 s after the camera's
    for track, frame, start in interleave(
        (cam, video("vp8", 60, 320, 240), 0.0), (mic, opus(100), 0.3)
    ):
        pub.send(track, frame, start)
    assert pub.files("file_opened")[0]["offsets_ms"] == {"video0": 0, "audio1": 300}
    pub.recording.end(cam)
    assert not pub.files()  # the microphone still sends
    pub.recording.end(mic, "left")
    (closed,) = pub.files()
    assert closed["reason"] == "left"
    path = Path(closed["path"])
    assert path.name.startswith("Alice_20") and path.name.endswith("Z_peer1.webm")
    times = read(path)
    assert times["video"][0] == 0 and times["audio"][0] == pytest.approx(0.3, abs=0.001)
    assert len(times["video"]) == 60 and len(times["audio"]) == 100


def test_a_replayed_keyframe_is_pre_roll_and_audio_and_video_start_together(
    tmp_path: Path,
) -> None:
    pub = Publisher(tmp_path)
    cam, mic = pub.track("video", "video/VP8"), pub.track("audio", "audio/opus")
    pub.report(cam, 0, T0)
    pub.report(mic, 0, T0 + 0.4)
    frames, audio = video("vp8", 60, 320, 240), opus(80)  # 0-2 s; 0.4-2 s
    # The subscription started at 0.4 s on the keyframe of 0 s, replayed: 12 frames at once.
    for frame in frames[:12]:
        pub.send(cam, frame, 0.0, arrival=T0 + 0.45)
    for track, frame, start in interleave((cam, frames[12:], 0.0), (mic, audio, 0.4)):
        pub.send(track, frame, start)
    (opened,) = pub.files("file_opened")
    assert opened["offsets_ms"] == {"video0": 0, "audio1": 0}
    assert opened["preroll_ms"] == {"video0": 400}
    pub.recording.close("stopped")
    times = read(Path(opened["path"]))
    assert times["audio"][0] == 0 and times["video"][0] == 0
    assert times["video"][:13] == pytest.approx([n / 1000 for n in range(13)])  # a blink
    # From then on each frame at its own time, in step with the audio.
    assert times["video"][13] == pytest.approx(13 / 30 - 0.4, abs=0.001)
    assert times["video"][-1] == pytest.approx(59 / 30 - 0.4, abs=0.001)
    assert len(times["video"]) == 60


def test_a_keyframe_asked_for_is_shown_from_the_start(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    mic, cam = pub.track("audio", "audio/opus"), pub.track("video", "video/VP8")
    pub.report(mic, 0, T0)
    pub.report(cam, 0, T0 + 0.2)  # the keyframe came 0.2 s after the audio began
    for track, frame, start in interleave(
        (mic, opus(100), 0.0), (cam, video("vp8", 30, 320, 240), 0.2)
    ):
        pub.send(track, frame, start)
    (opened,) = pub.files("file_opened")
    assert opened["pulled_back_ms"] == {"video1": 200}
    pub.recording.close("stopped")
    times = read(Path(opened["path"]))
    assert times["audio"][0] == 0 and times["video"][0] == 0  # a picture from the start
    assert times["video"][1] == pytest.approx(0.2 + 1 / 30, abs=0.001)  # then in step


def test_a_video_frame_before_any_keyframe_is_dropped(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    cam = pub.track("video", "video/VP8")
    pub.report(cam, 0, T0)
    frames = video("vp8", 40, 320, 240)
    for frame in frames[1:30]:  # starts mid-stream: no keyframe until frame 30 (g=30)
        pub.send(cam, frame, 0.0)
    assert not pub.files("file_opened")
    assert cam.dropped == 29
    for frame in frames[30:]:
        pub.send(cam, frame, 0.0)
    pub.recording.close("stopped")
    times = read(Path(pub.files()[0]["path"]))
    assert len(times["video"]) == 10 and times["video"][0] == 0


def test_a_track_that_never_sends_is_not_waited_for_past_the_settle_time(
    tmp_path: Path,
) -> None:
    pub = Publisher(tmp_path, settle=1.0)
    pub.track("video", "video/VP8")  # offered, but its publisher's camera gives nothing
    mic = pub.track("audio", "audio/opus")
    pub.report(mic, 0, T0)
    for frame in opus(100):
        pub.send(mic, frame, 0.0)
    (opened,) = pub.files("file_opened")
    assert opened["tracks"] == ["audio:audio/opus"]
    pub.recording.close("stopped")
    assert len(read(Path(opened["path"]))["audio"]) == 100  # nothing held was lost


def test_a_new_camera_track_takes_over_the_ended_ones_stream(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    cam, mic = pub.track("video", "video/VP8"), pub.track("audio", "audio/opus")
    pub.report(cam, 0, T0)
    pub.report(mic, 0, T0)
    for track, frame, start in interleave(
        (cam, video("vp8", 30, 320, 240), 0.0), (mic, opus(150), 0.0)
    ):
        pub.send(track, frame, start)
    pub.recording.end(cam)  # camera off at 1 s; on again at 2 s, bigger, as a new track
    cam2 = pub.track("video", "video/VP8")
    pub.report(cam2, 0, T0 + 2.0)
    for frame in video("vp8", 30, 640, 360):
        pub.send(cam2, frame, 2.0)
    pub.recording.close("stopped")
    (closed,) = pub.files()
    times = read(Path(closed["path"]))
    assert len(times["video"]) == 60 and times["video"][30] == pytest.approx(2.0, abs=0.001)
    with av.open(closed["path"]) as container:
        sizes = {(f.width, f.height) for f in container.decode(video=0)}
    assert sizes == {(320, 240), (640, 360)}  # a resolution change mid-file still decodes


def test_a_track_the_file_has_no_room_for_starts_the_next_file(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    mic = pub.track("audio", "audio/opus")
    pub.report(mic, 0, T0)
    audio = opus(250)  # 5 s
    for frame in audio[:100]:
        pub.send(mic, frame, 0.0)
    cam = pub.track("video", "video/VP8")  # the camera, turned on 2 s in
    pub.report(cam, 0, T0 + 2.0)
    frames = video("vp8", 90, 320, 240)
    for track, frame, start in interleave((mic, audio[100:], 0.0), (cam, frames, 2.0)):
        pub.send(track, frame, start)
    pub.recording.close("stopped")
    first, second = pub.files()
    assert first["reason"] == "tracks_changed" and second["reason"] == "stopped"
    assert Path(first["path"]).name < Path(second["path"]).name  # names sort in order
    assert read(Path(first["path"])).keys() == {"audio"}
    times = read(Path(second["path"]))
    assert len(times["video"]) == 90 and times["video"][0] == 0
    assert times["audio"][0] == pytest.approx(0.0, abs=0.03)  # in step with the camera
    assert len(times["audio"]) >= 145


def test_an_unrecordable_codec_is_skipped(tmp_path: Path) -> None:
    pub = Publisher(tmp_path)
    remote = RemoteTrack("peer1", "video", cast(Any, None), "9", codec="video/AV1")
    assert pub.recording.add(remote) is None
