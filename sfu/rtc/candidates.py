"""The selected ICE pair of a peer connection: its candidate types (host, srflx, prflx, relay)
and its addresses.

aiortc's getStats() has no candidate-pair entries; the pair in use is aioice's nominated pair,
on the connection behind the peer connection's ICE transport (private on both sides). With
max-bundle there is one ICE transport, and one component (RTP and RTCP are muxed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aiortc import RTCPeerConnection


class PairTypes(NamedTuple):
    local: str
    remote: str


class PairAddresses(NamedTuple):
    local: tuple[str, int]
    remote: tuple[str, int]


def selected_pair_types(pc: RTCPeerConnection) -> PairTypes | None:
    """Candidate types of the nominated pair; None until ICE has nominated one (or after close)."""
    pair = _nominated(pc)
    if pair is None:
        return None
    return PairTypes(str(pair.local_candidate.type), str(pair.remote_candidate.type))


def selected_pair_addresses(pc: RTCPeerConnection) -> PairAddresses | None:
    """Where the nominated pair's datagrams leave from and go to (host, port) each."""
    pair = _nominated(pc)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return PairAddresses((str(local.host), int(local.port)), (str(remote.host), int(remote.port)))


def _nominated(pc: RTCPeerConnection) -> Any:
    transports: set[Any] = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    for transport in list(transports):
        pair: Any = transport._connection._nominated.get(1)
        if pair is not None:
            return pair
    return None
