"""Which web pages may open the signaling WebSocket (the browser's Origin header).

A page on another site must not be able to join rooms with the visitor's browser (cross-site
WebSocket hijacking): by default only pages served by this server itself (the Origin's host and
port are the request's Host) may connect. Clients that are not browsers send no Origin and are
not concerned. ALLOWED_ORIGINS adds origins ("https://app.example.com"), or "*" allows any.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


class OriginPolicy:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = {o.strip().rstrip("/").lower() for o in allowed if o.strip()}
        self.any = "*" in self.allowed

    def allows(self, origin: str | None, host: str) -> bool:
        """`host` is the request's Host header (host[:port])."""
        if origin is None or self.any:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.lower()
