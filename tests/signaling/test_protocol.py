"""Protocol v1 types: round trips; every kind of bad frame gets its code and a clear message."""

from __future__ import annotations

import msgspec
import pytest

from signaling import protocol as p
from signaling.protocol import ErrorCode, ProtocolError, decode_client, decode_server, encode

CLIENT_MESSAGES: list[p.ClientMessage] = [
    p.Join(room="standup"),
    p.Join(room="a.b-c_9", name="Alice", token="t", resume="r"),
    p.Offer(sdp="v=0\r\n"),
    p.Answer(sdp="v=0\r\n"),
    p.Candidate(candidate=None),
    p.Candidate(
        candidate=p.IceCandidate(
            candidate="candidate:1 1 udp 1 192.0.2.1 9 typ host",
            sdpMid="0",
            sdpMLineIndex=0,
            usernameFragment="ufrag",
        )
    ),
    p.Leave(),
    p.Ping(),
    p.Ping(id=3),
    p.Ping(id="abc"),
    p.Ping(id=p.MAX_SAFE_INTEGER),
    p.Ping(id=-p.MAX_SAFE_INTEGER),
    p.Ping(id="i" * p.MAX_PING_ID_CHARS),
]

SERVER_MESSAGES: list[p.ServerMessage] = [
    p.Welcome(
        peer_id="abc",
        room="r",
        ice_servers=[
            p.IceServerInfo(urls=["stun:x"]),
            p.IceServerInfo(urls=["turn:y"], username="u", credential="c"),
        ],
        ice_mode="turn-only",
        participants=[p.ParticipantInfo(peer_id="x", name=None)],
        resume_token=None,
    ),
    p.ParticipantJoined(peer_id="x", name="Bob"),
    p.ParticipantLeft(peer_id="x", name=None, reason="failed"),
    p.ServerOffer(sdp="v=0\r\n" + "a=x\r\n" * 20_000),  # server SDP is not bounded
    p.ServerAnswer(sdp="v=0\r\n"),
    p.Candidate(candidate=None),
    p.Error(code=ErrorCode.BAD_SDP, message="nope"),
    p.Pong(id=None),
    p.Pong(id="x"),
]


@pytest.mark.parametrize("msg", CLIENT_MESSAGES, ids=repr)
def test_client_messages_round_trip(msg: p.ClientMessage) -> None:
    assert decode_client(encode(msg).decode()) == msg


@pytest.mark.parametrize("msg", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_messages_round_trip(msg: p.ServerMessage) -> None:
    assert decode_server(encode(msg)) == msg


def test_wire_format_is_tidy() -> None:
    assert encode(p.Candidate(candidate=None)) == b'{"type":"candidate","candidate":null}'
    assert encode(p.Pong()) == b'{"type":"pong"}'
    assert encode(
        p.Welcome(
            peer_id="a",
            room="r",
            ice_servers=[p.IceServerInfo(urls=["stun:x"])],
            ice_mode="all",
            participants=[p.ParticipantInfo(peer_id="b", name=None)],
            resume_token=None,
        )
    ) == (
        b'{"type":"welcome","peer_id":"a","room":"r","ice_servers":[{"urls":["stun:x"]}],'
        b'"ice_mode":"all","participants":[{"peer_id":"b","name":null}],"resume_token":null}'
    )
    assert encode(p.Error(code=ErrorCode.NOT_JOINED, message="m")) == (
        b'{"type":"error","code":"not_joined","message":"m"}'
    )


def test_browser_candidate_fields_and_unknown_fields() -> None:
    msg = decode_client(
        '{"type":"candidate","extra":1,"candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 '
        'typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"uf","future":true}}'
    )
    assert isinstance(msg, p.Candidate) and msg.candidate is not None
    assert (msg.candidate.sdpMid, msg.candidate.sdpMLineIndex) == ("0", 0)
    assert msg.candidate.usernameFragment == "uf"


BAD_FRAMES: list[tuple[str, str | bytes, ErrorCode, list[str]]] = [
    ("malformed json", '{"type": "ping",', ErrorCode.BAD_JSON, ["not valid JSON"]),
    ("not json at all", "hello", ErrorCode.BAD_JSON, ["not valid JSON"]),
    ("not an object", "[1, 2]", ErrorCode.BAD_MESSAGE, ["Expected `object`, got `array`"]),
    ("missing type", '{"room": "r"}', ErrorCode.BAD_MESSAGE, ["missing required field `type`"]),
    ("type not a string", '{"type": 7}', ErrorCode.BAD_MESSAGE, ["`type` must be a string"]),
    ("unknown type", '{"type": "dance"}', ErrorCode.UNKNOWN_TYPE, ["'dance'", "join, offer"]),
    ("server type", '{"type": "welcome"}', ErrorCode.UNKNOWN_TYPE, ["'welcome'"]),
    (
        "wrong field type",
        '{"type": "join", "room": 5}',
        ErrorCode.BAD_MESSAGE,
        ["`join`", "Expected `str`, got `int`", "`$.room`"],
    ),
    (
        "missing field",
        '{"type": "offer"}',
        ErrorCode.BAD_MESSAGE,
        ["`offer`", "missing required field `sdp`"],
    ),
    (
        "bad room name",
        '{"type": "join", "room": "a b"}',
        ErrorCode.BAD_MESSAGE,
        ["`$.room`", "regex"],
    ),
    ("empty room", '{"type": "join", "room": ""}', ErrorCode.BAD_MESSAGE, ["length >= 1"]),
    (
        "long name",
        '{"type": "join", "room": "r", "name": "' + "n" * 65 + '"}',
        ErrorCode.BAD_MESSAGE,
        ["`$.name`", "length <= 64"],
    ),
    (
        "oversize sdp",
        '{"type": "offer", "sdp": "' + "x" * (p.MAX_SDP_CHARS + 1) + '"}',
        ErrorCode.BAD_MESSAGE,
        ["`$.sdp`", f"length <= {p.MAX_SDP_CHARS}"],
    ),
    (
        "oversize candidate",
        '{"type": "candidate", "candidate": {"candidate": "' + "c" * 1025 + '"}}',
        ErrorCode.BAD_MESSAGE,
        ["`$.candidate.candidate`", "length <= 1024"],
    ),
    (
        "candidate without its string",
        '{"type": "candidate", "candidate": {"sdpMid": "0"}}',
        ErrorCode.BAD_MESSAGE,
        ["missing required field `candidate`", "`$.candidate`"],
    ),
    ("float ping id", '{"type": "ping", "id": 1.5}', ErrorCode.BAD_MESSAGE, ["`$.id`"]),
    (
        "huge ping id",
        '{"type": "ping", "id": ' + str(10**30) + "}",
        ErrorCode.BAD_MESSAGE,
        ["`$.id`"],
    ),
    (
        "long ping id",
        '{"type": "ping", "id": "' + "i" * 65 + '"}',
        ErrorCode.BAD_MESSAGE,
        ["`$.id`"],
    ),
    (
        "deep ping id",  # decoded a second time to name the type: a RecursionError escaped
        '{"type": "ping", "id": ' + "[" * 1000 + "]" * 1000 + "}",
        ErrorCode.BAD_MESSAGE,
        ["nested too deep"],
    ),
    (
        "deep unknown field",
        '{"type": "join", "room": "r", "x": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}",
        ErrorCode.BAD_MESSAGE,
        ["nested too deep"],
    ),
    ("binary frame", b'{"type": "ping"}', ErrorCode.BAD_MESSAGE, ["binary frames"]),
]


@pytest.mark.parametrize(
    ("frame", "code", "says"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
def test_bad_frames_get_their_code_and_say_why(
    frame: str | bytes, code: ErrorCode, says: list[str]
) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_client(frame, max_bytes=256 * 1024)
    assert info.value.code == code
    for words in says:
        assert words in info.value.message, info.value.message


def test_frame_over_the_limit_is_too_large() -> None:
    frame = '{"type": "ping", "id": "' + "x" * 60 + '"}'
    with pytest.raises(ProtocolError) as info:
        decode_client(frame, max_bytes=48)
    assert info.value.code == ErrorCode.TOO_LARGE
    assert f"{len(frame)} bytes" in info.value.message and "48" in info.value.message
    assert isinstance(decode_client(frame, max_bytes=len(frame)), p.Ping)


def test_frame_limit_counts_utf8_bytes_not_characters() -> None:
    frame = '{"type": "join", "room": "r", "name": "' + "é" * 30 + '"}'
    assert len(frame) <= 80 < len(frame.encode())
    with pytest.raises(ProtocolError) as info:
        decode_client(frame, max_bytes=80)
    assert info.value.code == ErrorCode.TOO_LARGE


def test_server_decoder_refuses_client_only_shapes() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_server(b'{"type": "join", "room": "r"}')
