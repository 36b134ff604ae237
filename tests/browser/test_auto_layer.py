"""`auto` under a real bandwidth cap: loadtest/downlink.py's scenario, one run, checked.

A Chromium page publishes simulcast; two Chromium pages subscribe on `auto`, one of them in a
network namespace of its own behind a veth pair whose far end gets `tc ... tbf rate 250kbit`
(the scenario makes both namespaces itself). The capped subscriber steps down a layer and stays
down; the cap lifted, it comes back to `h`; the other one stays on `h` all along (bandwidth
never limits it). How long each step takes is a figure (`python -m loadtest.downlink`), not
asserted beyond generous deadlines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from loadtest.netns import can_make_namespace
from tests.browser.conftest import CHROMIUM


def test_a_capped_subscriber_steps_down_and_back_up_the_other_stays_on_h() -> None:
    reason = can_make_namespace() or next(
        (f"`{tool}` is missing" for tool in ("tc", "nsenter") if shutil.which(tool) is None),
        None,
    )
    if reason is None and not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.downlink", "--runs", "1", "--json", "--hold", "4"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    run = json.loads(result.stdout.splitlines()[-1])
    assert "error" not in run, run
    assert run["step_down"] is not None and run["down_to"] in ("m", "l"), run
    assert run["stayed_down"], run
    assert run["step_up"] is not None and run["stayed_up"], run
    # The unconstrained one: bandwidth never held it below h, and it got h.
    assert set(run["free_ceilings"]) <= {"2", "None"}, run
    assert run["free_layers"] == ["h"], run
