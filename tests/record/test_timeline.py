"""sfu.record.timeline: where each track's first frame goes, as values in, values out."""

from __future__ import annotations

import pytest

from sfu.record.timeline import FirstFrame, choose_basis

V, A = 90_000, 48_000


def frame(clock: int, arrival: float, capture: float | None) -> FirstFrame:
    kind = "video" if clock == V else "audio"
    return FirstFrame(pts=1234, clock_rate=clock, kind=kind, arrival=arrival, capture=capture)


@pytest.mark.parametrize(
    ("firsts", "offsets_ms", "by_sender"),
    [
        # Audio captured 0.3 s after the video's first keyframe: 300 ms in, by sender reports.
        ([frame(V, 100.05, 50.0), frame(A, 100.30, 50.3)], [0, 300], True),
        # The same capture times, but the video came no sooner than the audio: its keyframe was
        # replayed: pre-roll, the file starts with the audio (the video's lead: see below).
        ([frame(V, 100.40, 50.0), frame(A, 100.32, 50.3)], [0, 0], True),
        ([frame(A, 100.00, 50.0), frame(V, 100.02, 49.2)], [0, 0], True),
        # Video that really started 1.3 s before the audio (and came 1.3 s sooner).
        ([frame(A, 100.00, 50.0), frame(V, 98.70, 48.7)], [1300, 0], True),
        # No sender report for the audio yet: placed by arrival, less the video's delay.
        ([frame(V, 100.10, 50.0), frame(A, 100.35, None)], [0, 250], True),
        # No sender reports at all: by arrival.
        ([frame(V, 100.10, None), frame(A, 100.35, None)], [0, 250], False),
        # Reports that put the tracks 5 s apart (one from a clock that is off): not trusted.
        ([frame(V, 100.10, 50.0), frame(A, 100.35, 45.3)], [0, 250], False),
        # One track alone starts at 0.
        ([frame(A, 100.0, 7.0)], [0], True),
    ],
)
def test_first_frames_keep_their_true_distance(
    firsts: list[FirstFrame], offsets_ms: list[int], by_sender: bool
) -> None:
    basis = choose_basis(firsts)
    assert basis.by_sender is by_sender
    got = [round(1000 * basis.offset(f) / f.clock_rate) for f in firsts]
    assert got == offsets_ms


def test_a_later_track_on_an_earlier_basis() -> None:
    basis = choose_basis([frame(A, 100.1, 50.0), frame(V, 100.12, 50.02)])
    assert basis.delay == pytest.approx(50.1)  # network delay and the clocks' difference
    late = frame(V, 110.1, 60.0)  # a new camera track, 10 s in
    assert basis.offset(late) == 10 * V
    unknown = frame(V, 110.2, None)  # no report yet: arrival less the usual delay
    assert basis.offset(unknown) == pytest.approx(10.1 * V, abs=1)
    early = frame(A, 99.0, 49.0)  # never before the file's start
    assert basis.offset(early) == 0


def test_video_before_the_audio_is_pre_roll() -> None:
    audio, video = frame(A, 100.0, 50.0), frame(V, 100.02, 49.6)
    basis = choose_basis([audio, video])
    assert basis.origin == 50.0
    assert basis.lead(video) == round(0.4 * V) and basis.lead(audio) == 0


def test_a_keyframe_just_after_the_audio_is_shown_from_the_start() -> None:
    audio = frame(A, 100.0, 50.0)
    asked_for = frame(V, 100.2, 50.15)  # the keyframe the subscription asked for
    turned_on = frame(V, 101.1, 51.05)  # a camera that came 1.05 s later
    basis = choose_basis([audio, asked_for])
    assert basis.pulled_back(asked_for) and not basis.pulled_back(audio)
    assert not choose_basis([audio, turned_on]).pulled_back(turned_on)
