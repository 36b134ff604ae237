"""The seam between the hub and the media plane.

The hub (signaling/) knows nothing of media: it calls a MediaBackend that the entry point hands it
(sfu.backend.SfuBackend in production). Everything crossing this seam is plain data (SDP strings,
candidate fields), so the hub never imports aiortc and the backend never sees a WebSocket or a
protocol message.

Concurrency: the hub calls one MediaPeer's coroutines one at a time, in the order the client's
messages arrived. The backend calls PeerSignals from the event loop whenever it has something to
say (a server offer after a room change, say); those methods must not block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class NegotiationError(Exception):
    """A client's SDP or candidate could not be applied.

    `code` is one of the stable error codes of docs/protocol.md (e.g. "bad_sdp",
    "no_offer_pending"); the hub sends it to the client as an `error` message and keeps the session.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class Grants:
    """What a participant may do (its room token's grants; all but `admin` without tokens).

    Without `publish` the media plane refuses any offer that sends a track (`publish_not_allowed`);
    without `subscribe` nothing is forwarded to it; without `data` what it sends on its data
    channels reaches nobody (`data_not_allowed`; it still receives). `admin` is the hub's alone
    (its HTTP API).
    """

    publish: bool = True
    subscribe: bool = True
    data: bool = True
    admin: bool = False


@dataclass(frozen=True, slots=True)
class TrackInfo:
    """One published track, as the admin API shows it."""

    id: str
    kind: str
    subscribers: int  # participants it is forwarded to


@dataclass(frozen=True, slots=True)
class PublishedTrack:
    """The state of one track a participant publishes, as the others are told it: `track` is
    the msid track id it is forwarded with, `source` one of protocol.Source, `layers` its
    simulcast layers (`l`, `m`, `h`), or none."""

    peer_id: str
    track: str
    kind: str
    source: str
    muted: bool
    layers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TrackEnded:
    """A track a participant published is gone."""

    peer_id: str
    track: str


@dataclass(frozen=True, slots=True)
class SpeakersChanged:
    """Who speaks in the room now, loudest first: (peer_id, level 0..1) each."""

    speakers: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class DataRefused:
    """A data channel message of this client reached nobody: `code` says why (a protocol error
    code), `limit` is the limit that refused it (signaling.limits.LIMITS), if one did."""

    code: str
    message: str
    limit: str | None = None


# What the media plane tells a client about its room, beyond negotiation (PeerSignals.event).
RoomEvent = PublishedTrack | TrackEnded | SpeakersChanged | DataRefused

# A room without tokens: everyone publishes and subscribes.
ALL_GRANTS = Grants()


@dataclass(frozen=True, slots=True)
class CandidateInit:
    """An ICE candidate as browsers send it (RTCIceCandidateInit)."""

    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class PeerSignals(Protocol):
    """What the media plane tells one client; the hub turns each call into a protocol message."""

    def send_offer(self, sdp: str) -> None: ...

    def send_answer(self, sdp: str) -> None: ...

    def send_candidate(self, candidate: CandidateInit | None) -> None:
        """None is end-of-candidates."""
        ...

    def media_failed(self, reason: str) -> None:
        """The peer connection failed or closed on its own; the hub ends the session."""
        ...

    def rebuild(self, reason: str, ice_servers: list[IceServer]) -> None:
        """The client's peer connection is replaced, its session kept: it makes a new one with
        these ICE servers and publishes the same tracks on it."""
        ...

    def layer_changed(self, track: str, layer: str, requested: str) -> None:
        """The simulcast layer (`l`, `m`, `h`) forwarded on one of the client's tracks (its
        msid track id) changed; `requested` is what the client asked for (or `auto`)."""
        ...

    def event(self, event: RoomEvent) -> None:
        """Something in the room changed that this client should know (see RoomEvent)."""
        ...

    def publish_layers(self, track: str, layers: list[str]) -> None:
        """The simulcast layers one of the client's published tracks should send changed (every
        one up to the highest anyone receives): it should pause the others (dynacast)."""
        ...


class MediaPeer(Protocol):
    """One participant's media session: one RTCPeerConnection with the server."""

    async def offer(self, sdp: str) -> None:
        """Apply a client offer. The answer goes out through PeerSignals.send_answer.

        A client offer that collides with the server's own pending offer is ignored (the server
        is impolite): no answer and no error are sent. Raises NegotiationError on a bad SDP.
        """
        ...

    async def answer(self, sdp: str) -> None:
        """Apply the client's answer to the server's offer; NegotiationError("no_offer_pending")
        when there is none, NegotiationError("bad_sdp") when it cannot be applied."""
        ...

    async def candidate(self, candidate: CandidateInit | None) -> None:
        """Add a remote candidate; None is end-of-candidates. Raises NegotiationError."""
        ...

    async def set_layer(self, track: str, layer: str) -> None:
        """Choose the simulcast layer (`l`, `m`, `h`, or `auto`) of a track forwarded to this
        peer (its msid track id). NegotiationError("unknown_track") when no video track by that
        id is forwarded to it. A track without simulcast keeps its one layer."""
        ...

    async def describe_track(self, track: str, source: str, muted: bool) -> None:
        """The client says what a track it publishes (or is about to, by its msid track id)
        is: its source (protocol.Source) and whether it starts muted. Others are told once it
        is published, or at once if it is. Descriptions of tracks not published are kept only
        as many as the participant may publish (the oldest go first)."""
        ...

    async def mute(self, track: str, muted: bool) -> None:
        """Mute or unmute a track the client publishes (or has described): forwarding stops,
        and starts again on a keyframe. NegotiationError("unknown_track") for a track it
        neither publishes nor described."""
        ...

    async def resumed(self) -> None:
        """The client is back on a new socket after losing its old one (same session): send
        again what it may have missed: the state of every track in the room, and a server
        offer still waiting for its answer, with its end-of-candidates."""
        ...

    async def close(self) -> None:
        """Leave: end this peer's publications and subscriptions. Idempotent."""
        ...

    def tracks(self) -> list[TrackInfo]:
        """What this participant publishes now (the admin API lists it)."""
        ...


class MediaBackend(Protocol):
    # Whether publishers may send simulcast (three encodings, RIDs l, m, h): said in `welcome`.
    simulcast: bool

    async def join(
        self, room: str, peer_id: str, signals: PeerSignals, *, grants: Grants, data: bool = False
    ) -> MediaPeer:
        """Add a participant to a room's media; others start receiving its tracks once it
        publishes, and it receives theirs (the backend offers as soon as there is something),
        as far as its grants allow. `data`: it opens data channels (`join.data`)."""
        ...

    async def close(self) -> None: ...
