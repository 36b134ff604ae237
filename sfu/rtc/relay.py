"""Introspection of aiortc's MediaRelay, whose bookkeeping is private (name-mangled)."""

from __future__ import annotations

from aiortc.contrib.media import MediaRelay


def proxy_count(relay: MediaRelay) -> int:
    """Consumers currently registered on the relay (a proxy registers on its first recv())."""
    proxies: dict[object, set[object]] = relay._MediaRelay__proxies  # type: ignore[attr-defined]
    return sum(len(p) for p in proxies.values())


def source_count(relay: MediaRelay) -> int:
    """Source tracks the relay is still reading (one task each)."""
    tasks: dict[object, object] = relay._MediaRelay__tasks  # type: ignore[attr-defined]
    return len(tasks)
