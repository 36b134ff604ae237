"""Hook: sfu.rtc.ice replaces aioice's choice of host addresses."""

from __future__ import annotations

import aioice
import aioice.ice
import pytest

from sfu.rtc import ice


def test_addresses_are_filtered_by_family() -> None:
    ice.set_ice_addresses(["127.0.0.1", "::1"])
    try:
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    finally:
        ice.set_ice_addresses(["127.0.0.1"])


def test_bad_address_fails_at_once() -> None:
    with pytest.raises(ValueError):
        ice.set_ice_addresses(["not-an-ip"])


async def test_gathers_a_loopback_host_candidate() -> None:
    # aioice alone skips 127.0.0.1: this is what lets a loopback-only namespace work at all.
    ice.set_ice_addresses(["127.0.0.1"])
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        assert [(c.host, c.type) for c in connection.local_candidates] == [("127.0.0.1", "host")]
    finally:
        await connection.close()
