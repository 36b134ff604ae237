"""Which Host names the server answers to on /ws (DNS rebinding).

A page on evil.example whose name the attacker re-points at this server's address is, to the
browser, same-origin with it: its Origin and the request's Host are both `evil.example:PORT`, so
the Origin check (signaling.origin) passes. Only the server knows its own names: with
ALLOWED_HOSTS set, a request whose Host is not one of them is refused. An entry is a name
("sfu.example.com", any port) or a name and a port ("sfu.example.com:8443"); IPv6 addresses are
written bare ("::1") or in brackets with a port ("[::1]:8080").
"""

from __future__ import annotations

from collections.abc import Iterable

# What a server listening on loopback only is reached by (the laptop default).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def split_host(host: str) -> tuple[str, str | None]:
    """'Name:port' -> ('name', 'port'); '[::1]:80' -> ('::1', '80'); '::1' -> ('::1', None)."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name.rstrip("."), port
    return host, None


class HostPolicy:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {split_host(h) for h in allowed if h.strip()}

    def allows(self, host: str | None) -> bool:
        """`host` is the request's Host header; any host is allowed when none is configured."""
        if not self.allowed:
            return True
        if not host:
            return False
        name, port = split_host(host)
        return (name, None) in self.allowed or (port is not None and (name, port) in self.allowed)
