"""Fault injection for the scenarios that run in a network namespace of their own: the test starts
`python -m <scenario> <parent namespace id>` under `unshare --net` (run_scenario), the scenario
refuses to run anywhere else (enter_own_namespace) and drops datagrams with iptables there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from loadtest.netns import can_make_namespace, namespace_id


def iptables(*rule: str) -> None:
    subprocess.run(["iptables", *rule], check=True, capture_output=True)


def block_port(port: int, *, add: bool = True) -> None:
    """Every UDP datagram to or from this local port dropped (`add=False` lifts it)."""
    action = "-A" if add else "-D"
    iptables(action, "INPUT", "-p", "udp", "--dport", str(port), "-j", "DROP")
    iptables(action, "INPUT", "-p", "udp", "--sport", str(port), "-j", "DROP")


def run_scenario(module: str, *args: str, timeout: float = 180) -> Any:
    """Run a scenario module in a fresh network namespace; its last stdout line, as JSON.
    Skips where no namespace can be made (fails on CI, which must be able to)."""
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
    return json.loads(result.stdout.splitlines()[-1])


def enter_own_namespace(parent_namespace: str) -> None:
    """In the scenario: refuse to run in the namespace the tests run in; bring loopback up."""
    if namespace_id() == parent_namespace:
        raise SystemExit("refusing: not a fresh network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
