"""Where ICE gathers, what it announces, and why a TURN allocation failed: hooks into aioice.

aioice gathers host candidates on every interface but loopback, on ephemeral ports, and
announces the addresses it bound; it swallows a failed TURN allocation (no relay candidate, no
error). A server needs to choose all of that:

- `set_ice_addresses`: the local addresses host candidates are gathered on (ICE_ADDRESSES);
  tests in a loopback-only namespace need 127.0.0.1. Replaces aioice's module-level
  `get_host_addresses`.
- `set_port_range`: host candidates bind a UDP port in [first, last] (ICE_PORT_RANGE), so a
  firewall can be opened for exactly those. Our own `Connection.get_component_candidates`
  binds the host sockets, then lets aioice's do the TURN part (no host address left to it) while
  we ask the STUN server about our sockets, as aioice would.
- `set_announced_addresses`: behind 1:1 NAT (a cloud VM), a host candidate bound on the private
  address is announced with the public one (ICE_ANNOUNCED_ADDRESS, as Janus's nat_1_1_mapping
  and LiveKit's node_ip): checks to the public address reach the socket through the NAT, and
  answers leave from it. The candidate object is shared with its protocol, so ICE pairs see it too.
- `turn_failure`: in relay-only mode, why a connection has no relay candidate: aioice's
  `relayed_candidate` is wrapped to keep the error of each connection's allocation.
- `harden_stun`: aioice's STUN parser raises struct.error (not ValueError, which aioice takes
  for "not STUN") on an attribute cut short, e.g. a 2-byte PRIORITY: the exception escapes its
  datagram_received and asyncio logs it at ERROR, for every such datagram anyone sends to a
  media port (found by tests/sfu/test_fuzz.py). A malformed message becomes a ValueError, so
  aioice hands it on as non-STUN data, which DTLS and SRTP ignore.
- Triggered checks on a pair in progress (RFC 8445 7.3.1.4), which aioice skips: when the
  remote's check arrives on a pair whose own check is still unanswered, that check goes again
  at once instead of at its next retransmission (0.5 s later). Through TURN the first check of
  one side is often dropped (the other side's allocation has no permission for it yet): this
  took ~0.5 s off every relayed join (loadtest.relayjoin).

Every override is process-wide, like the settings it implements.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import random
import socket
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import aioice.ice
import aioice.stun
import aioice.turn
from aioice import Candidate
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, TransportPolicy
from aiortc import RTCPeerConnection

logger = logging.getLogger(__name__)

_original_host_addresses = aioice.ice.get_host_addresses
_original_component_candidates = aioice.ice.Connection.get_component_candidates
_original_relayed_candidate = aioice.ice.relayed_candidate
_original_check_incoming = aioice.ice.Connection.check_incoming
_original_parse_message = aioice.stun.parse_message

_addresses: list[str] | None = None
_port_range: tuple[int, int] | None = None
# Local address -> announced address; "" as the key maps every local address of that family.
_announced: dict[str, str] = {}
_gathering: contextvars.ContextVar[Any] = contextvars.ContextVar("aiosfu_gathering", default=None)
_turn_errors: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


# --- addresses ----------------------------------------------------------------------------------


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _addresses is None:
        return _original_host_addresses(use_ipv4, use_ipv6)
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
    _install()


def set_port_range(ports: tuple[int, int] | None) -> None:
    """Bind host candidates on UDP ports first..last (None: ephemeral ports)."""
    global _port_range
    if ports is not None:
        first, last = ports
        if not 0 < first <= last < 65536:
            raise ValueError(f"not a port range: {first}-{last}")
    _port_range = ports
    _install()


def set_announced_addresses(mapping: Mapping[str, str]) -> None:
    """Announce host candidates bound on a local address with another one.

    Keys are local addresses, or "" for every local address of the announced one's family.
    """
    for local, announced in mapping.items():
        public = ipaddress.ip_address(announced)
        if local and ipaddress.ip_address(local).version != public.version:
            raise ValueError(f"{local} and {announced} are not of one IP version")
    _announced.clear()
    _announced.update(mapping)
    _install()


def _install() -> None:
    aioice.ice.get_host_addresses = _get_host_addresses
    aioice.ice.Connection.get_component_candidates = _get_component_candidates  # type: ignore[method-assign]
    aioice.ice.relayed_candidate = _relayed_candidate
    aioice.ice.Connection.check_incoming = _check_incoming  # type: ignore[method-assign]


# --- malformed STUN ----------------------------------------------------------------------------


def harden_stun() -> None:
    """Make a malformed STUN message a ValueError for aioice (idempotent, process-wide)."""
    aioice.stun.parse_message = _parse_message


def _parse_message(data: bytes) -> aioice.stun.Message:
    try:
        return _original_parse_message(data)
    except ValueError:
        raise
    except Exception as exc:  # struct.error, IndexError, KeyError from a mangled attribute
        raise ValueError(f"malformed STUN message: {exc!r}") from None


# --- gathering ------------------------------------------------------------------------------------


async def _get_component_candidates(
    self: aioice.ice.Connection, component: int, addresses: list[str], timeout: int = 5
) -> list[Candidate]:
    token = _gathering.set(self)  # tasks started from here (the TURN allocation) inherit it
    try:
        if _port_range is None:
            candidates: list[Candidate] = await _original_component_candidates(
                self, component, addresses, timeout
            )
        else:
            candidates = await _gather_in_range(self, component, addresses, timeout, _port_range)
    finally:
        _gathering.reset(token)
    if _announced:
        for candidate in candidates:
            if candidate.type == "host":
                candidate.host = _announce(candidate.host)
    return candidates


async def _gather_in_range(
    conn: aioice.ice.Connection,
    component: int,
    addresses: list[str],
    timeout: int,
    ports: tuple[int, int],
) -> list[Candidate]:
    loop = asyncio.get_running_loop()
    hosts: list[StunProtocol] = []
    for address in addresses:
        sock = _bind_in_range(address, ports)
        if sock is None:
            continue
        _, protocol = await loop.create_datagram_endpoint(lambda: StunProtocol(conn), sock=sock)
        host, port = sock.getsockname()[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        hosts.append(protocol)
    conn._protocols += hosts
    candidates = [p.local_candidate for p in hosts]

    # The TURN allocation is aioice's (no address left to it: no host socket of its own), and
    # the STUN queries ours, about our sockets.
    stun = conn.stun_server
    queries = [
        asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, stun))
        for p in hosts
        if stun is not None and ipaddress.ip_address(p.local_candidate.host).version == 4
    ]
    relayed = await _original_component_candidates(conn, component, [], timeout)
    if queries:
        done, pending = await asyncio.wait(queries, timeout=timeout)
        for task in pending:
            task.cancel()
        candidates += [t.result()[0] for t in done if t.exception() is None]
    return candidates + relayed


def _bind_in_range(address: str, ports: tuple[int, int]) -> socket.socket | None:
    """A UDP socket on a free port of the range, tried from a random start (so that ports
    freed by calls that ended are not handed out again at once)."""
    first, last = ports
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    count = last - first + 1
    start = random.randrange(count)
    for i in range(count):
        port = first + (start + i) % count
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            continue
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        return sock
    logger.warning("no free UDP port in ICE_PORT_RANGE %d-%d on %s", first, last, address)
    return None


def _announce(host: str) -> str:
    if host in _announced:
        return _announced[host]
    announced = _announced.get("")
    if announced is not None:
        version = ipaddress.ip_address(host).version
        if ipaddress.ip_address(announced).version == version:
            return announced
    return host


# --- triggered checks ---------------------------------------------------------------------


def _check_incoming(
    self: aioice.ice.Connection,
    message: aioice.stun.Message,
    addr: tuple[str, int],
    protocol: StunProtocol,
) -> None:
    _original_check_incoming(self, message, addr, protocol)
    in_progress = aioice.ice.CandidatePair.State.IN_PROGRESS
    if not any(
        p.protocol is protocol and p.remote_addr == addr and p.state is in_progress
        for p in self._check_list
    ):
        return
    # Our check to that address is unanswered, though the path works (its check arrived):
    # send it again now, same transaction, rather than wait for its retransmission timer.
    for transaction in list(protocol.transactions.values()):
        if transaction._Transaction__addr == addr:  # type: ignore[attr-defined]
            protocol.send_stun(transaction._Transaction__request, addr)  # type: ignore[attr-defined]


# --- TURN failures ------------------------------------------------------------------------


async def _relayed_candidate(**kwargs: Any) -> Any:
    try:
        return await _original_relayed_candidate(**kwargs)
    except BaseException as exc:
        conn = _gathering.get()
        if conn is not None:
            host, port = kwargs["turn_server"]
            _turn_errors[conn] = f"TURN server {host}:{port}: {_why(exc)}"
        raise


def _why(exc: BaseException) -> str:
    if isinstance(exc, aioice.stun.TransactionFailed):
        code, reason = exc.response.attributes.get("ERROR-CODE", (0, "error"))
        hint = " (wrong or expired credentials)" if code in (401, 403, 437, 441) else ""
        return f"allocation refused: {code} {reason}{hint}"
    if isinstance(exc, asyncio.CancelledError | aioice.stun.TransactionTimeout | TimeoutError):
        return "no answer to the allocation request"
    return f"allocation failed: {exc or type(exc).__name__}"


def turn_failure(pc: RTCPeerConnection) -> str | None:
    """Why a relay-only connection gathered no relay candidate; None when it has one, or is not
    relay-only, or has not finished gathering. aiortc says nothing in that case: the connection
    just stays `new`."""
    transports: set[Any] = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    for transport in list(transports):
        conn: Any = transport.iceGatherer._connection
        if conn._transport_policy is not TransportPolicy.RELAY or not conn._local_candidates_end:
            continue
        if any(c.type == "relay" for c in conn.local_candidates):
            continue
        if conn.turn_server is None:
            return "relay-only, and no TURN server to relay through"
        host, port = conn.turn_server
        return _turn_errors.get(conn, f"TURN server {host}:{port}: no relay candidate")
    return None
