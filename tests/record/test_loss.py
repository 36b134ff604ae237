"""Recording through 5 % packet loss (tests/record/loss_scenario.py, in a namespace of its own):
a short gap where a loss could not be repaired, never a stalled or broken recording."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.netns import can_make_namespace, namespace_id
from tests.record import loss_scenario as scenario


def test_a_recording_goes_through_packet_loss(tmp_path: Path) -> None:
    reason = can_make_namespace() or (None if shutil.which("iptables") else "no iptables")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    argv = [sys.executable, "-m", "tests.record.loss_scenario", namespace_id(), str(tmp_path)]
    result = subprocess.run(
        ["unshare", "--net", "--", *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    print(seen)
    recorded = 2 + scenario.LOSS_SECONDS + 2
    # Decoded whole (the scenario raises on a decode error), and never stalled: the audio goes
    # on to the end, with short gaps only (no NACK for Opus; and more gaps than the network made:
    # aiortc's audio jitter buffer, once a hole sits near its head, drops good packets too).
    assert seen["ends"]["audio"] > recorded - 1.5 and seen["gaps"]["audio"] < 1.0, seen
    # Video: repaired by NACK, or a short gap. A packet lost and then lost again when resent
    # would stall aiortc's video jitter buffer until it overflows (seconds); the Python
    # client's receive side skips to a keyframe instead (sfu.rtc.jitter): video goes on too.
    assert seen["gaps"]["video"] < 1.0 and seen["frames"]["video"] > 0.5 * 15 * recorded, seen
    assert seen["ends"]["video"] > recorded - 1.5, seen
    print(f"video recorded to {seen['ends']['video']:.1f} s of {seen['ends']['audio']:.1f} s")
