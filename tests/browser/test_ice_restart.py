"""ICE restart with real Chromium (tests/browser/icerestart_scenario.py, in a network namespace of
its own, since it blocks ports with iptables): the page's restartIce(), the server's port gone
for good, and a 5 s blackout. Prints the figures; asserts what a user would see."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from loadtest.netns import can_make_namespace, namespace_id
from tests.browser.conftest import CHROMIUM, require


def test_ice_restarts_with_chromium() -> None:
    require(CHROMIUM, "chromium")
    reason = can_make_namespace() or (None if shutil.which("iptables") else "no iptables")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    argv = [sys.executable, "-m", "tests.browser.icerestart_scenario", namespace_id()]
    result = subprocess.run(
        ["unshare", "--net", "--", *argv], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-6000:]
    figures = json.loads(result.stdout.splitlines()[-1])
    print("ICE restart figures (seconds):", json.dumps(figures, indent=1))
    assert figures["dead_paths"] >= 1
