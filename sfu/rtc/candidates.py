"""The selected ICE pair of a peer connection: its candidate types (host, srflx, prflx, relay)
and its addresses; and remote candidates given to its one ICE transport.

aiortc's getStats() has no candidate-pair entries; the pair in use is aioice's nominated pair,
on the connection behind the peer connection's ICE transport (private on both sides). With
max-bundle there is one ICE transport, and one component (RTP and RTCP are muxed).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aiortc import RTCIceCandidate, RTCPeerConnection


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


async def add_remote_candidate(pc: RTCPeerConnection, candidate: RTCIceCandidate | None) -> None:
    """Give a remote candidate (None: end-of-candidates) to the connection's ICE transport,
    whatever m-line it names: with max-bundle every m-line shares it.

    aiortc's `addIceCandidate` gives a candidate only to the m-line it names, and not if that
    m-line is marked bundled. When the data channels' m-line is the bundle's first (Chromium's,
    whose channels are made before its tracks), sfu.rtc.datachannel marks it bundled too, and
    the candidate reached no transport: the initial checks got by on peer-reflexive candidates,
    but an ICE restart, which waits for a candidate of the new generation, never checked."""
    transports: list[Any] = [t.receiver.transport.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport.transport)
    seen: set[int] = set()
    for ice in transports:
        if id(ice) not in seen and ice.state != "closed":
            seen.add(id(ice))
            await ice.addRemoteCandidate(candidate)
