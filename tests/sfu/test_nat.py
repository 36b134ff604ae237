"""A server behind 1:1 NAT (ICE_ANNOUNCED_ADDRESS) with ICE_PORT_RANGE, through a real
iptables DNAT/SNAT, in a network namespace the test makes for itself (tests/sfu/nat_scenario.py)."""

from __future__ import annotations

import json

from tests.scenario import run_scenario
from tests.sfu import nat_scenario as scenario


def test_a_call_through_the_announced_address_on_the_port_range() -> None:
    seen = run_scenario("tests.sfu.nat_scenario", timeout=120)

    assert seen["frame"] == [320, 240]
    first, last = scenario.PORTS
    # Only the public address is announced, on ports of the range; the private one never.
    assert seen["server_candidates"], seen
    for candidate in seen["server_candidates"]:
        address, port, _, kind = candidate.split(" ")[:4]
        assert (address, kind) == (scenario.PUBLIC, "host"), candidate
        assert first <= int(port) <= last, candidate
    assert scenario.PRIVATE not in json.dumps(seen["server_candidates"])
    # Both clients' media go to the public address (which exists only as the NAT's mapping).
    for address, port in seen["remote_addresses"]:
        assert address == scenario.PUBLIC and first <= port <= last
    assert len({port for _, port in seen["remote_addresses"]}) == 2  # one port per participant
    assert seen["pair_types"] == [["host", "host"], ["host", "host"]]
