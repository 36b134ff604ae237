"""Recording through 5 % packet loss (tests/record/loss_scenario.py, in a namespace of its own):
a short gap where a loss could not be repaired, never a stalled or broken recording."""

from __future__ import annotations

from pathlib import Path

from tests.record import loss_scenario as scenario
from tests.scenario import run_scenario


def test_a_recording_goes_through_packet_loss(tmp_path: Path) -> None:
    seen = run_scenario("tests.record.loss_scenario", str(tmp_path), timeout=120)
    print(seen)
    recorded = 2 + scenario.LOSS_SECONDS + 2
    # Decoded whole (the scenario raises on a decode error), and never stalled: the audio goes
    # on to the end, with short gaps only (no NACK for Opus; and more gaps than the network made:
    # aiortc's audio jitter buffer, once a hole sits near its head, drops good packets too).
    assert seen["ends"]["audio"] > recorded - 1.5 and seen["gaps"]["audio"] < 1.0, seen
    # Video: repaired by NACK, or a short gap. A packet lost and then lost again when resent
    # would stall aiortc's video jitter buffer until it overflows (seconds); the Python
    # client's receive side skips to a keyframe instead (sfu.rtc.jitter): video goes on too.
    # The longest gap is a figure (issue 10's goal: 1 s), printed; what fails is a stall. A
    # loaded landing run saw 1.13 s (a keyframe asked for after 0.5 s, then its own way here).
    print(f"longest gaps: video {seen['gaps']['video']:.2f} s, audio {seen['gaps']['audio']:.2f} s")
    assert seen["gaps"]["video"] < 2.5 and seen["frames"]["video"] > 0.5 * 15 * recorded, seen
    assert seen["ends"]["video"] > recorded - 1.5, seen
    print(f"video recorded to {seen['ends']['video']:.1f} s of {seen['ends']['audio']:.1f} s")
