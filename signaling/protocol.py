"""Protocol v1: every message on /ws as a msgspec Struct, the single source of truth.

docs/protocol.md explains these messages and docs/protocol.schema.json is generated from them
(`python -m signaling.schema`); tests/signaling/test_docs.py fails when either drifts from here.

Every message is a JSON object in a WebSocket text frame, tagged by its `type`. Unknown fields are
ignored so that newer clients keep working; everything else that does not fit is a ProtocolError
carrying a stable ErrorCode.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal, get_args

import msgspec

# A client answer carries one m-line per forwarded track (~1-2 KB each): a big room needs room.
MAX_SDP_CHARS: Final = 200 * 1024
MAX_CANDIDATE_CHARS: Final = 1024
MAX_NAME_CHARS: Final = 64
MAX_TOKEN_CHARS: Final = 4096
# A ping id is echoed back: bounded so that a pong costs no more than the ping's own frame, and
# numbers stay exact in JavaScript (Number.MAX_SAFE_INTEGER).
MAX_PING_ID_CHARS: Final = 64
MAX_SAFE_INTEGER: Final = 2**53 - 1
ROOM_PATTERN: Final = "^[A-Za-z0-9_.-]+$"

RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=ROOM_PATTERN)]
DisplayName = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)]
Token = Annotated[str, msgspec.Meta(max_length=MAX_TOKEN_CHARS)]
ClientSdp = Annotated[str, msgspec.Meta(max_length=MAX_SDP_CHARS)]
CandidateLine = Annotated[str, msgspec.Meta(max_length=MAX_CANDIDATE_CHARS)]
PingId = (
    Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
    | Annotated[str, msgspec.Meta(max_length=MAX_PING_ID_CHARS)]
    | None
)
MAX_TRACK_ID_CHARS: Final = 256
# Data messages (on a client's data channels, not this socket): whom one message may name.
MAX_DATA_TARGETS: Final = 64
PeerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TrackId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TRACK_ID_CHARS)]

IceMode = Literal["all", "stun-only", "turn-only"]
ICE_MODES: Final[tuple[str, ...]] = get_args(IceMode)
# `replaced`: another session joined with the same identity (room tokens); `removed`: by an
# operator (the admin API).
LeaveReason = Literal["left", "disconnected", "failed", "replaced", "removed"]
# What a participant is, as the others see it: a person (or a bot taking part), or a recorder,
# which only receives and which pages show as a "recording" badge (LiveKit's egress participant).
Role = Literal["participant", "recorder"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
# Simulcast layers by RID, lowest first (the browser sends them scaled down by 4, 2, 1).
LayerName = Literal["l", "m", "h"]
LayerChoice = Literal["l", "m", "h", "auto"]
# What a published track carries (LiveKit's track sources): a publisher says it with
# `track_info`; without one a video is a `camera` and an audio a `microphone`.
Source = Literal["camera", "microphone", "screen", "screen_audio"]
SOURCES: Final[tuple[str, ...]] = get_args(Source)
MediaKind = Literal["audio", "video"]


class ErrorCode(StrEnum):
    """Stable error codes; docs/protocol.md says when each is sent."""

    BAD_JSON = "bad_json"
    BAD_MESSAGE = "bad_message"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    NO_OFFER_PENDING = "no_offer_pending"
    BAD_SDP = "bad_sdp"
    BAD_CANDIDATE = "bad_candidate"
    MEDIA_FAILED = "media_failed"
    RESUME_FAILED = "resume_failed"
    RATE_LIMITED = "rate_limited"
    JOIN_TIMEOUT = "join_timeout"
    ROOM_FULL = "room_full"
    TOO_MANY_TRACKS = "too_many_tracks"
    TOO_MANY_CANDIDATES = "too_many_candidates"
    # Room tokens (signaling.auth): the socket is closed after each of these five.
    TOKEN_REQUIRED = "token_required"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_WRONG_ROOM = "token_wrong_room"
    PUBLISH_NOT_ALLOWED = "publish_not_allowed"
    # The server ended the session, and closes its socket: do not rejoin on your own.
    REPLACED = "replaced"
    REMOVED = "removed"
    ROOM_CLOSED = "room_closed"
    UNKNOWN_TRACK = "unknown_track"
    # Data channels: a message refused (it reached nobody); the session and channels go on.
    BAD_DATA = "bad_data"
    DATA_TOO_LARGE = "data_too_large"
    DATA_RATE_LIMITED = "data_rate_limited"
    DATA_NOT_ALLOWED = "data_not_allowed"
    INTERNAL_ERROR = "internal_error"


class ProtocolError(Exception):
    """A frame that is not a valid client message; the hub answers with `error` and carries on."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Msg(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True):
    """Base of every message: a JSON object tagged by `type`; unknown fields are ignored."""


class IceCandidate(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An ICE candidate, spelled as browsers spell RTCIceCandidateInit."""

    candidate: CandidateLine
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None
    usernameFragment: str | None = None


# Both directions


class Candidate(Msg, tag="candidate"):
    """A trickled ICE candidate; null is end-of-candidates, sent after every offer and answer."""

    candidate: IceCandidate | None


# Client -> server


class Join(Msg, tag="join"):
    """Enter a room, or with `resume` (a `welcome.resume_token`) come back to the same session
    after losing the socket."""

    room: RoomName
    name: DisplayName | None = None
    token: Token | None = None
    resume: Token | None = None
    role: Role = "participant"
    # The client opens data channels: the server's offers carry their m-line too, so that they
    # are negotiated in the first exchange whoever offers first (docs/protocol.md, "Data
    # channels"). Janus's videoroom has the same option.
    data: bool = False


class Offer(Msg, tag="offer"):
    """A client offer, sent when what the client publishes changes."""

    sdp: ClientSdp


class Answer(Msg, tag="answer"):
    """The client's answer to the server's pending offer."""

    sdp: ClientSdp


class Leave(Msg, tag="leave"):
    """Leave the room; the socket stays open and may join again."""


class Ping(Msg, tag="ping"):
    """Ask for a `pong` carrying the same id."""

    id: PingId = None


class SetLayer(Msg, tag="set_layer"):
    """Choose the simulcast layer of a forwarded video track (`auto`, the default: the server's
    choice). `track` is its msid track id, as this client sees it in the server's SDP."""

    track: TrackId
    layer: LayerChoice


class DescribeTrack(Msg, tag="track_info"):
    """Say what a track you publish is (its msid track id): its source, and whether it starts
    muted. Sent before the offer that publishes it, or at any time after."""

    track: TrackId
    source: Source
    muted: bool = False


class Mute(Msg, tag="mute"):
    """Mute or unmute a track you publish: the server stops forwarding it (and starts again,
    on a keyframe), and tells the others."""

    track: TrackId
    muted: bool


# Server -> client


class IceServerInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One entry of RTCConfiguration.iceServers."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class ParticipantInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Another participant of the room; `role` is left out for a plain participant."""

    peer_id: str
    name: str | None
    role: Role = "participant"


class GrantInfo(msgspec.Struct, kw_only=True):
    """What this participant may do, from its room token."""

    publish: bool
    subscribe: bool
    data: bool = True


class Welcome(Msg, tag="welcome"):
    """The answer to `join`: who you are, how to configure ICE, who is already there.

    `resumed` is true when a `join` with `resume` got its session back: same peer_id, same
    media; `participants` is then who is in the room now, for the client to reconcile with.
    """

    peer_id: str
    room: str
    ice_servers: list[IceServerInfo]
    ice_mode: IceMode
    participants: list[ParticipantInfo]
    resume_token: str | None
    # Left out when the server has no room tokens: then everyone may publish and subscribe.
    grants: GrantInfo | None = None
    simulcast: bool = False
    resumed: bool = False


class ParticipantJoined(Msg, tag="participant_joined"):
    """Someone else entered the room; `role` is left out for a plain participant."""

    peer_id: str
    name: str | None
    role: Role = "participant"


class ParticipantLeft(Msg, tag="participant_left"):
    """Someone else left the room: on purpose, by losing its socket, or by a media failure."""

    peer_id: str
    name: str | None
    reason: LeaveReason


# The server's SDP is not bounded like the client's: its offer grows with every forwarded track,
# and a large room must not make it undecodable for the Python client.
class ServerOffer(Msg, tag="offer"):
    """A server offer, sent when what the client receives changes."""

    sdp: str


class ServerAnswer(Msg, tag="answer"):
    """The server's answer to a client offer."""

    sdp: str


class Error(Msg, tag="error"):
    """Something the client sent could not be handled; the session stays usable."""

    code: ErrorCode
    message: str


class Pong(Msg, tag="pong"):
    """The answer to `ping`, with the same id."""

    id: PingId = None


class IceServers(Msg, tag="ice_servers"):
    """Fresh ICE servers, with new TURN credentials, before those of `welcome` expire: use
    them for any later gathering (an ICE restart, a new connection)."""

    ice_servers: list[IceServerInfo]


class LayerChanged(Msg, tag="layer"):
    """The simulcast layer the server now forwards on one of your tracks, and what you asked."""

    track: str
    layer: LayerName
    requested: LayerChoice


class TrackState(Msg, tag="track_state"):
    """A track another participant publishes, and each change of it: sent before its m-line is
    offered. `track` is the msid track id it is forwarded with; `layers`, its simulcast layers."""

    peer_id: str
    track: str
    kind: MediaKind
    source: Source
    muted: bool
    layers: list[LayerName] = []


class TrackUnpublished(Msg, tag="track_unpublished"):
    """A track another participant published is gone (its m-line goes inactive next)."""

    peer_id: str
    track: str


class SpeakerInfo(msgspec.Struct, kw_only=True):
    """A participant speaking, and how loud: its smoothed audio level, linear, 0 to 1."""

    peer_id: str
    level: float


class ActiveSpeakers(Msg, tag="active_speakers"):
    """Who speaks now, loudest first (empty: nobody); sent when that changes, at most four times
    a second."""

    speakers: list[SpeakerInfo]


class PublishLayers(Msg, tag="publish_layers"):
    """The simulcast layers of one of your published video tracks to keep sending (every one up
    to the highest anyone receives); pause the others (dynacast). `track` is your track's id
    (its msid track id)."""

    track: str
    layers: list[LayerName]


# Data channels (docs/protocol.md, "Data channels"): JSON text messages on a client's `reliable`
# and `lossy` channels, not on /ws.


class DataSend(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a client sends on a data channel: `payload`, any JSON value, for `to` (peer ids;
    absent: everyone else in the room)."""

    payload: msgspec.Raw
    to: Annotated[list[PeerId], msgspec.Meta(max_length=MAX_DATA_TARGETS)] | None = None


class DataReceived(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a client receives on a data channel: who sent `payload` (`sender`), and, for a
    message sent to chosen participants, whom it was for (`to`)."""

    sender: str
    payload: msgspec.Raw
    to: list[str] | None = None


class GoingAway(Msg, tag="going_away"):
    """The server is shutting down (SIGTERM): media goes on until it closes this socket, a few
    seconds from now; a `join` meanwhile is answered with this and the socket closed. Connect
    again no sooner than `retry_after` seconds after the socket closes (plus a random share of
    it, so that a room does not come back in one instant): as a fresh session, since a server
    that restarts keeps none."""

    reason: str
    retry_after: float


class Rebuild(Msg, tag="rebuild"):
    """Your media connection is replaced, your session kept (the server could not restart ICE
    in place: its side of the connection is gone). Close your RTCPeerConnection and make a new
    one with these ICE servers (fresh TURN credentials); publish the same tracks on it (same
    track ids: they keep their publications, and their subscribers their m-lines) and answer
    the server's offer, which brings back what you receive. Same `peer_id`: the others see
    nothing. What you send about the old connection after this is ignored."""

    reason: str
    ice_servers: list[IceServerInfo]


ClientMessage = Join | Offer | Answer | Candidate | Leave | Ping | SetLayer | DescribeTrack | Mute
ServerMessage = (
    Welcome
    | ParticipantJoined
    | ParticipantLeft
    | ServerOffer
    | ServerAnswer
    | Candidate
    | Error
    | Pong
    | IceServers
    | LayerChanged
    | TrackState
    | TrackUnpublished
    | ActiveSpeakers
    | PublishLayers
    | GoingAway
    | Rebuild
)

CLIENT_TYPES: Final[tuple[str, ...]] = (
    "join",
    "offer",
    "answer",
    "candidate",
    "leave",
    "ping",
    "set_layer",
    "track_info",
    "mute",
)

_client_decoder: msgspec.json.Decoder[ClientMessage] = msgspec.json.Decoder(ClientMessage)
_server_decoder: msgspec.json.Decoder[ServerMessage] = msgspec.json.Decoder(ServerMessage)
_encoder = msgspec.json.Encoder()


class _TypeOnly(msgspec.Struct):
    type: object = None


_TOO_DEEP: Final = "arrays or objects nested too deep: messages nest a few levels at most"


def encode(msg: Msg) -> bytes:
    return _encoder.encode(msg)


def decode_client(frame: str | bytes, *, max_bytes: int | None = None) -> ClientMessage:
    """Decode one WebSocket frame from a client.

    `frame` is what the socket delivered: str for a text frame, bytes for a binary frame (which
    protocol v1 refuses). Raises ProtocolError with the code to send back.
    """
    if not isinstance(frame, str):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            "binary frames are not accepted: send each message as JSON in a text frame",
        )
    if max_bytes is not None:
        _check_size(frame, max_bytes)
    try:
        return _client_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise _validation_error(frame, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc}") from None
    except RecursionError:
        # msgspec walks nested arrays and objects on the C stack, even in fields it skips.
        raise ProtocolError(ErrorCode.BAD_MESSAGE, _TOO_DEEP) from None


def decode_server(frame: str | bytes) -> ServerMessage:
    """Decode one server message (for Python clients and tests); raises msgspec errors as-is."""
    return _server_decoder.decode(frame)


_data_send_decoder = msgspec.json.Decoder(DataSend)
_data_received_decoder = msgspec.json.Decoder(DataReceived)


def decode_data(message: str | bytes) -> DataSend:
    """Decode one data channel message from a client; ProtocolError(`bad_data`) if it is not a
    DataSend (text or binary, as long as it is UTF-8 JSON)."""
    try:
        return _data_send_decoder.decode(message)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ProtocolError(ErrorCode.BAD_DATA, f"invalid data message: {exc}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_DATA, _TOO_DEEP) from None


def encode_data(received: DataReceived) -> bytes:
    return _encoder.encode(received)


def decode_data_received(message: str | bytes) -> DataReceived:
    """Decode one data message from the server (for Python clients); raises msgspec errors."""
    return _data_received_decoder.decode(message)


def _check_size(frame: str, max_bytes: int) -> None:
    # A str of n characters is n to 4n bytes of UTF-8: only encode when the answer is not obvious.
    size = len(frame)
    if size * 4 > max_bytes:
        size = len(frame.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.TOO_LARGE, f"frame is {size} bytes, over the limit of {max_bytes} bytes"
        )


def _validation_error(frame: str, detail: str) -> ProtocolError:
    # msgspec reports where it failed as a trailing " - at `$.path`"; a bad tag fails at `$.type`.
    # Decoding again only to name the type: a nesting too deep for it is refused the same way.
    try:
        tag = msgspec.json.decode(frame, type=_TypeOnly).type
    except msgspec.DecodeError:
        tag = None  # not an object: the detail already says so
    except RecursionError:
        return ProtocolError(ErrorCode.BAD_MESSAGE, _TOO_DEEP)
    if detail.endswith("- at `$.type`"):
        if isinstance(tag, str):
            known = ", ".join(CLIENT_TYPES)
            return ProtocolError(
                ErrorCode.UNKNOWN_TYPE,
                f"unknown message type {tag!r}; client messages are: {known}",
            )
        return ProtocolError(ErrorCode.BAD_MESSAGE, f"`type` must be a string: {detail}")
    if isinstance(tag, str):
        return ProtocolError(ErrorCode.BAD_MESSAGE, f"invalid `{tag}` message: {detail}")
    return ProtocolError(ErrorCode.BAD_MESSAGE, f"invalid message: {detail}")
