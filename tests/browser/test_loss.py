"""A three-party call through 5 % random packet loss (tests/browser/loss_scenario.py, in a
namespace of its own): every receiver, Chromium and Python, keeps getting video from both
others, and prints the longest freeze it saw (issue 10's goal: at most 1 s; a figure, not an
assertion, on a shared machine)."""

from __future__ import annotations

import json

from tests.browser.conftest import CHROMIUM, require
from tests.scenario import run_scenario


def test_a_call_goes_on_through_random_loss() -> None:
    require(CHROMIUM, "chromium")
    seen = run_scenario("tests.browser.loss_scenario", timeout=180)
    print(json.dumps(seen))
    for receiver in ("chromium", "py1", "py2"):
        streams = seen[receiver]
        longest = ", ".join(f"{s['longest']:.2f} s" for s in streams)
        print(f"{receiver}: longest freeze {longest} in {seen['seconds']:.0f} s at 5 % loss")
        # Video from both others all along: at least a few frames a second from each.
        assert len(streams) == 2, seen
        assert all(s["frames"] > 3 * seen["seconds"] for s in streams), seen
    print("server, during the loss:", seen["server"])
