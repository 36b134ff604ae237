"""Which local addresses ICE gathers host candidates on.

aioice gathers on every interface and always skips 127.0.0.1 and ::1, with no option to choose.
A server must choose (ICE_ADDRESSES), and tests in a loopback-only namespace need 127.0.0.1, so
we replace aioice's module-level `get_host_addresses`. The override is process-wide, like the
setting it implements.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice

_original = aioice.ice.get_host_addresses
_addresses: list[str] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _addresses is None:
        return _original(use_ipv4, use_ipv6)
    picked = []
    for address in _addresses:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            picked.append(address)
    return picked


def set_ice_addresses(addresses: Sequence[str] | None) -> None:
    """Gather host candidates on exactly these addresses (None: aioice's own choice)."""
    global _addresses
    if addresses is not None:
        for address in addresses:
            ipaddress.ip_address(address)  # fail at start-up, not at the first join
    _addresses = None if addresses is None else list(addresses)
    aioice.ice.get_host_addresses = _get_host_addresses
