"""A three-party call through 5 % random packet loss (tests/browser/loss_scenario.py, in a
namespace of its own): every receiver, Chromium and Python, keeps getting video from both
others, and prints the longest freeze it saw (issue 10's goal: at most 1 s; a figure, not an
assertion, on a shared machine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from loadtest.netns import can_make_namespace, namespace_id
from tests.browser.conftest import CHROMIUM, require


def test_a_call_goes_on_through_random_loss() -> None:
    require(CHROMIUM, "chromium")
    reason = can_make_namespace() or (None if shutil.which("iptables") else "no iptables")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    argv = [sys.executable, "-m", "tests.browser.loss_scenario", namespace_id()]
    result = subprocess.run(
        ["unshare", "--net", "--", *argv], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-4000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    print(json.dumps(seen))
    for receiver in ("chromium", "py1", "py2"):
        streams = seen[receiver]
        longest = ", ".join(f"{s['longest']:.2f} s" for s in streams)
        print(f"{receiver}: longest freeze {longest} in {seen['seconds']:.0f} s at 5 % loss")
        # Video from both others all along: at least a few frames a second from each.
        assert len(streams) == 2, seen
        assert all(s["frames"] > 3 * seen["seconds"] for s in streams), seen
    print("server, during the loss:", seen["server"])
