"""The client's address, for per-address limits and logs.

Behind a reverse proxy every socket comes from the proxy. Its X-Forwarded-For header names the
client, but anyone can send that header: it is believed only as far as it was written by proxies
listed in TRUSTED_PROXIES. Starting from the socket's peer, while the address in hand is a trusted
proxy, the next address from the right of X-Forwarded-For is the one that proxy saw (nginx's
`real_ip_recursive on`, Caddy's `trusted_proxies`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: list[Network] = [
            ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies if p.strip()
        ]

    def of(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """`peer` is the socket's remote address; `forwarded_for` every X-Forwarded-For value."""
        address = peer or "unknown"
        if not self.trusted:
            return address
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        while hops and self._is_trusted(address):
            address = hops.pop()
        return address

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(ip in network for network in self.trusted)
