"""The candidate types of a peer connection's selected ICE pair (host, srflx, prflx, relay).

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


def selected_pair_types(pc: RTCPeerConnection) -> PairTypes | None:
    """Candidate types of the nominated pair; None until ICE has nominated one (or after close)."""
    transports: set[Any] = pc._RTCPeerConnection__iceTransports  # type: ignore[attr-defined]
    for transport in list(transports):
        connection: Any = transport._connection
        pair: Any = connection._nominated.get(1)
        if pair is not None:
            return PairTypes(str(pair.local_candidate.type), str(pair.remote_candidate.type))
    return None
