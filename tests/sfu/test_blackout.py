"""Blackouts of all UDP (iptables, in a namespace of its own: tests/sfu/blackout_scenario.py)
between two Python clients and the server, their WebSockets alive: 5 s, then 30 s (past
aioice's consent expiry, ~25-35 s of failed checks). After each, alice's video reaches bob
again, and nobody stays in the room as a zombie: the call heals in place, or those whose
session ended were told (issue 10, point 7). Prints restore -> first frame at bob."""

from __future__ import annotations

import json

from tests.scenario import run_scenario


def test_the_call_heals_after_5_s_and_30_s_blackouts() -> None:
    figures = run_scenario("tests.sfu.blackout_scenario", "5", "30", timeout=240)
    print("blackout figures (seconds):", json.dumps(figures, indent=1))
    assert {"5 s", "30 s"} <= set(figures)
