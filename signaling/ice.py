"""ICE servers and the ICE mode: what clients are told in `welcome`, and what the server's own
peer connections use.

- `all`: clients get the STUN and TURN servers and use every candidate.
- `stun-only`: clients get the STUN servers only (TURN_URLS, if set, are not handed out).
- `turn-only`: clients get the TURN servers only and gather relay candidates only
  (`iceTransportPolicy: "relay"`); so do the server's own peer connections, each with
  credentials the server mints for itself ("<expiry>:sfu-<peer_id>"), so that no media takes a
  direct path at either end and the SFU's own UDP ports need not be reachable from outside.

In `all` and `stun-only` modes the server's peer connections use no STUN or TURN server: they
offer host candidates on ICE_ADDRESSES (or the announced public address), as Janus and
mediasoup do.

TURN credentials are minted per peer from TURN_SECRET (signaling.turn, coturn's
`use-auth-secret`), or are the static TURN_USERNAME / TURN_PASSWORD (accepted with a warning:
anyone who opens the page can read them and use the TURN server for as long as they are valid).

A bad combination raises IceConfigError, one line naming the setting to fix: the entry point
prints it and exits with status 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple, cast

from signaling.backend import IceServer
from signaling.protocol import ICE_MODES, IceMode, IceServerInfo
from signaling.turn import REFRESH_AT, TurnRest

DEFAULT_TURN_TTL: Final = 3600.0

# RFC 7064 (stun:, stuns:) and RFC 7065 (turn:, turns:); a bracketed IPv6 literal is not
# accepted, as aiortc's own parser does not take it.
_URL = re.compile(
    r"(?P<scheme>stuns?|turns?):(?P<host>[^\s?:/\[\]]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>[a-z]+))?"
)


class IceConfigError(ValueError):
    """A setting that cannot work; the message names it."""


class IceUrl(NamedTuple):
    scheme: str
    host: str
    port: int
    transport: str | None  # udp or tcp, for turn: and turns:

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")


def parse_ice_url(url: str, setting: str) -> IceUrl:
    """Parse one STUN or TURN URL; IceConfigError names `setting` when it is malformed."""
    match = _URL.fullmatch(url)
    if match is None:
        raise IceConfigError(
            f"{setting}: {url!r} is not a STUN or TURN URL "
            "(stun:HOST[:PORT], turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT])"
        )
    scheme, host, port_text, transport = match.group("scheme", "host", "port", "transport")
    port = int(port_text) if port_text else (5349 if scheme in ("stuns", "turns") else 3478)
    if not 0 < port < 65536:
        raise IceConfigError(f"{setting}: {url!r} has no valid port")
    if scheme.startswith("stun") and transport is not None:
        raise IceConfigError(f"{setting}: {url!r}: a STUN URL takes no transport")
    if scheme == "turn":
        transport = transport or "udp"
    elif scheme == "turns":
        transport = transport or "tcp"
    if transport not in (None, "udp", "tcp") or (scheme == "turns" and transport != "tcp"):
        raise IceConfigError(
            f"{setting}: {url!r}: transport must be udp or tcp (turns: is TLS over tcp)"
        )
    return IceUrl(scheme, host, port, transport)


@dataclass(frozen=True, kw_only=True)
class IceConfig:
    mode: str = "all"
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    # TURN REST shared secret (coturn's static-auth-secret): never sent, never logged.
    turn_secret: str | None = field(default=None, repr=False)
    turn_ttl: float = DEFAULT_TURN_TTL
    turn_username: str | None = None
    turn_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ICE_MODES:
            modes = ", ".join(ICE_MODES)
            raise IceConfigError(f"ICE_MODE must be one of {modes}, not {self.mode!r}")
        for url in self.stun_urls:
            if parse_ice_url(url, "STUN_URLS").is_turn:
                raise IceConfigError(f"STUN_URLS: {url!r} is a TURN URL: put it in TURN_URLS")
        for url in self.turn_urls:
            if not parse_ice_url(url, "TURN_URLS").is_turn:
                raise IceConfigError(f"TURN_URLS: {url!r} is a STUN URL: put it in STUN_URLS")
        if self.turn_ttl <= 0:
            raise IceConfigError(f"TURN_TTL must be a positive duration, not {self.turn_ttl}")
        static = self.turn_username is not None or self.turn_password is not None
        if self.turn_secret is not None and static:
            raise IceConfigError(
                "TURN_SECRET and TURN_USERNAME/TURN_PASSWORD are exclusive: set one or the other"
            )
        if static and not (self.turn_username and self.turn_password):
            raise IceConfigError("TURN_USERNAME and TURN_PASSWORD go together: set both")
        if self.turn_secret == "":
            raise IceConfigError("TURN_SECRET is empty")
        if self.turn_urls and self.turn_secret is None and not static:
            raise IceConfigError(
                "TURN_URLS needs credentials: TURN_SECRET (coturn's static-auth-secret), "
                "or TURN_USERNAME and TURN_PASSWORD"
            )
        if self.mode == "turn-only" and not self.turn_urls:
            raise IceConfigError("ICE_MODE=turn-only needs TURN_URLS (the TURN servers to relay)")
        if self.mode == "stun-only" and not self.stun_urls:
            raise IceConfigError("ICE_MODE=stun-only needs STUN_URLS")

    # --- what the entry point reports ---------------------------------------------------------

    def warnings(self) -> list[str]:
        """One line each, for the log at start-up."""
        found = []
        if self.turn_username is not None:
            found.append(
                "TURN_USERNAME/TURN_PASSWORD are static TURN credentials: every page can read "
                "them and use the TURN server for as long as they are valid; prefer TURN_SECRET "
                "(TURN REST credentials minted per peer, coturn's use-auth-secret)"
            )
        if self.mode == "stun-only" and self.turn_urls:
            found.append("TURN_URLS are not handed out in ICE_MODE=stun-only")
        return found

    def describe(self) -> str:
        """A one-line summary for the start-up log (no secret, no password)."""
        turn = ", ".join(self.turn_urls) or "none"
        if self.turn_urls:
            turn += (
                f" (REST credentials valid {self.turn_ttl:g} s)"
                if self.turn_secret is not None
                else " (static credentials)"
            )
        return f"ICE mode {self.mode}; STUN {', '.join(self.stun_urls) or 'none'}; TURN {turn}"

    # --- servers --------------------------------------------------------------------------------

    @property
    def ice_mode(self) -> IceMode:
        return cast(IceMode, self.mode)  # checked in __post_init__

    @property
    def relay_only(self) -> bool:
        return self.mode == "turn-only"

    @property
    def refreshes_credentials(self) -> bool:
        """Whether clients hold TURN credentials that expire (and so get fresh ones)."""
        return self.turn_secret is not None and bool(self.turn_urls) and self.mode != "stun-only"

    @property
    def refresh_interval(self) -> float:
        return self.turn_ttl * REFRESH_AT

    def client_servers(self, peer_id: str, now: float) -> list[IceServer]:
        """What one client puts in RTCConfiguration.iceServers (its own TURN credentials)."""
        servers = []
        if self.stun_urls and self.mode != "turn-only":
            servers.append(IceServer(urls=list(self.stun_urls)))
        if self.turn_urls and self.mode != "stun-only":
            servers.append(self._turn(list(self.turn_urls), peer_id, now))
        return servers

    def client_infos(self, peer_id: str, now: float) -> list[IceServerInfo]:
        return [
            IceServerInfo(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in self.client_servers(peer_id, now)
        ]

    def server_servers(self, peer_id: str, now: float) -> list[IceServer]:
        """What the server's own peer connection with `peer_id` uses: TURN in turn-only mode
        (aiortc takes the first usable TURN URL: a plain UDP one first), nothing otherwise."""
        if not self.relay_only:
            return []
        urls = sorted(self.turn_urls, key=lambda url: not _plain_udp(url))
        return [self._turn(urls, f"sfu-{peer_id}", now)]

    def _turn(self, urls: list[str], user: str, now: float) -> IceServer:
        if self.turn_secret is not None:
            minted = TurnRest(self.turn_secret, self.turn_ttl).mint(user, now)
            return IceServer(urls=urls, username=minted.username, credential=minted.credential)
        return IceServer(urls=urls, username=self.turn_username, credential=self.turn_password)


def _plain_udp(url: str) -> bool:
    parsed = parse_ice_url(url, "TURN_URLS")
    return parsed.scheme == "turn" and parsed.transport == "udp"
