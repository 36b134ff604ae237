"""Scenarios that change a network (iptables, veths, NAT) run as a module in a namespace of
their own, made by `unshare --net`, so that nothing they do reaches this machine's network; they
print what they saw as one JSON line last."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from loadtest.netns import can_make_namespace, namespace_id


def run_scenario(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run `python -m module <namespace id> *args` in a new network namespace; its last line."""
    reason = can_make_namespace() or (None if shutil.which("iptables") else "no iptables")
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    argv = [sys.executable, "-m", module, namespace_id(), *args]
    result = subprocess.run(
        ["unshare", "--net", "--", *argv], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-6000:]
    seen: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return seen
