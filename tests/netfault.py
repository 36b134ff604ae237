"""Fault injection for the scenarios that run in a network namespace of their own (started by
tests.scenario.run_scenario): the scenario refuses to run anywhere else (enter_own_namespace)
and drops datagrams with iptables there."""

from __future__ import annotations

import subprocess

from loadtest.netns import namespace_id


def iptables(*rule: str) -> None:
    subprocess.run(["iptables", *rule], check=True, capture_output=True)


def block_port(port: int, *, add: bool = True) -> None:
    """Every UDP datagram to or from this local port dropped (`add=False` lifts it)."""
    action = "-A" if add else "-D"
    iptables(action, "INPUT", "-p", "udp", "--dport", str(port), "-j", "DROP")
    iptables(action, "INPUT", "-p", "udp", "--sport", str(port), "-j", "DROP")


def enter_own_namespace(parent_namespace: str) -> None:
    """In the scenario: refuse to run in the namespace the tests run in; bring loopback up."""
    if namespace_id() == parent_namespace:
        raise SystemExit("refusing: not a fresh network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
