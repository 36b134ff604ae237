"""ICE restart with real Chromium (tests/browser/icerestart_scenario.py, in a network namespace of
its own, since it blocks ports with iptables): the page's restartIce(), the server's port gone
for good, and a 5 s blackout. Prints the figures; asserts what a user would see."""

from __future__ import annotations

import json

from tests.browser.conftest import CHROMIUM, require
from tests.scenario import run_scenario


def test_ice_restarts_with_chromium() -> None:
    require(CHROMIUM, "chromium")
    figures = run_scenario("tests.browser.icerestart_scenario", timeout=240)
    print("ICE restart figures (seconds):", json.dumps(figures, indent=1))
    assert figures["dead_paths"] >= 1
