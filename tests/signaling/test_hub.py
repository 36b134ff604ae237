"""The hub over real sockets: an aiohttp server on 127.0.0.1 and aiohttp WebSocket clients,
in front of a fake media backend that records what it is asked and can answer, offer or fail."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from aiohttp import WSCloseCode, WSMsgType, web

from signaling import protocol as p
from signaling.backend import (
    ALL_GRANTS,
    CandidateInit,
    Grants,
    MediaPeer,
    NegotiationError,
    PeerSignals,
    PublishedTrack,
    TrackInfo,
)
from signaling.config import HubConfig
from signaling.hub import Hub, create_app
from signaling.ice import IceConfig
from signaling.protocol import ErrorCode
from tests.util import eventually

M = TypeVar("M", bound=p.Msg)


class FakePeer:
    def __init__(
        self,
        backend: FakeBackend,
        room: str,
        peer_id: str,
        signals: PeerSignals,
        grants: Grants = ALL_GRANTS,
    ):
        self.backend = backend
        self.room = room
        self.peer_id = peer_id
        self.signals = signals
        self.grants = grants
        self.calls: list[tuple[str, Any]] = []
        self.offer_pending = False
        self.closed = False

    def server_offer(self, sdp: str = "server-offer") -> None:
        self.offer_pending = True
        self.signals.send_offer(sdp)
        self.signals.send_candidate(None)

    def _maybe_fail(self, method: str) -> None:
        if (exc := self.backend.fail.get(method)) is not None:
            raise exc

    async def offer(self, sdp: str) -> None:
        self.calls.append(("offer", sdp))
        self._maybe_fail("offer")
        self.signals.send_answer(f"answer-to:{sdp}")
        self.signals.send_candidate(None)

    async def answer(self, sdp: str) -> None:
        self.calls.append(("answer", sdp))
        self._maybe_fail("answer")
        if not self.offer_pending:
            raise NegotiationError("no_offer_pending", "there is no server offer to answer")
        self.offer_pending = False

    async def candidate(self, candidate: CandidateInit | None) -> None:
        self.calls.append(("candidate", candidate))
        self._maybe_fail("candidate")

    async def set_layer(self, track: str, layer: str) -> None:
        self.calls.append(("set_layer", (track, layer)))
        if track != "forwarded":
            raise NegotiationError("unknown_track", f"no video track {track!r} is forwarded")
        self.signals.layer_changed(track, "l", layer)

    async def describe_track(self, track: str, source: str, muted: bool) -> None:
        self.calls.append(("describe_track", (track, source, muted)))

    async def mute(self, track: str, muted: bool) -> None:
        self.calls.append(("mute", (track, muted)))
        if track != f"{self.peer_id}-video":
            raise NegotiationError("unknown_track", f"you publish no track {track!r}")
        self.signals.event(PublishedTrack(self.peer_id, track, "video", "camera", muted))

    async def resumed(self) -> None:
        self.calls.append(("resumed", None))
        if self.offer_pending:
            self.signals.send_offer("server-offer-again")
            self.signals.send_candidate(None)

    async def close(self) -> None:
        self.calls.append(("close", None))
        self.closed = True

    def tracks(self) -> list[TrackInfo]:
        return [TrackInfo(f"{self.peer_id}-video", "video", 0)]


class FakeBackend:
    simulcast = False

    def __init__(self) -> None:
        self.peers: dict[str, FakePeer] = {}
        self.fail: dict[str, BaseException] = {}
        self.offer_on_join = False

    async def join(
        self, room: str, peer_id: str, signals: PeerSignals, *, grants: Grants, data: bool = False
    ) -> MediaPeer:
        if (exc := self.fail.get("join")) is not None:
            raise exc
        peer = FakePeer(self, room, peer_id, signals, grants)
        if self.offer_on_join:
            peer.server_offer()  # before join returns: the hub must hold it until welcome
            await asyncio.sleep(0)
        self.peers[peer_id] = peer
        return peer

    async def close(self) -> None:
        pass


class Client:
    """A WebSocket client that records every server message and consumes them strictly in order."""

    _ids = itertools.count()

    def __init__(self, name: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.name = name
        self.ws = ws
        self.received: list[p.ServerMessage] = []
        self.cursor = 0
        self.peer_id = ""
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            assert frame.type is WSMsgType.TEXT, f"{self.name} got a {frame.type} frame"
            self.received.append(p.decode_server(frame.data))

    async def send(self, msg: p.Msg | dict[str, Any] | str | bytes) -> None:
        if isinstance(msg, bytes):
            await self.ws.send_bytes(msg)
        elif isinstance(msg, str):
            await self.ws.send_str(msg)
        elif isinstance(msg, dict):
            await self.ws.send_str(json.dumps(msg))
        else:
            await self.ws.send_str(p.encode(msg).decode())

    async def next(self, cls: type[M]) -> M:
        def arrived() -> str:
            if len(self.received) > self.cursor:
                return ""
            return f"{self.name} got nothing after {self.received[: self.cursor]}"

        await eventually(arrived)
        msg = self.received[self.cursor]
        self.cursor += 1
        assert isinstance(msg, cls), f"{self.name}: expected {cls.__name__}, got {msg!r}"
        return msg

    async def error(self, code: ErrorCode) -> p.Error:
        err = await self.next(p.Error)
        assert err.code == code, f"{self.name}: expected {code}, got {err}"
        assert err.message
        return err

    async def sync(self) -> None:
        """A ping/pong barrier: the next message must be the pong, so nothing else was queued."""
        ping_id = f"{self.name}-{next(self._ids)}"
        await self.send(p.Ping(id=ping_id))
        pong = await self.next(p.Pong)
        assert pong.id == ping_id

    async def join(self, room: str = "room1", name: str | None = None) -> p.Welcome:
        await self.send(p.Join(room=room, name=name or self.name))
        welcome = await self.next(p.Welcome)
        self.peer_id = welcome.peer_id
        return welcome

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


class Env:
    def __init__(self, hub: Hub, backend: FakeBackend, url: str, http: aiohttp.ClientSession):
        self.hub = hub
        self.backend = backend
        self.url = url
        self.http = http

    async def connect(self, name: str) -> Client:
        return Client(name, await self.http.ws_connect(f"{self.url}/ws"))

    def peer(self, client: Client) -> FakePeer:
        return self.backend.peers[client.peer_id]


ICE = IceConfig(
    stun_urls=("stun:stun.example.org:3478",),
    turn_urls=("turn:turn.example.org:3478",),
    turn_username="u",
    turn_password="c",
)


@pytest.fixture
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    marker = request.node.get_closest_marker("hub_config")
    settings = marker.kwargs if marker is not None else {}
    backend = FakeBackend()
    hub = Hub(backend, HubConfig(ice=ICE, **settings))
    runner = web.AppRunner(create_app(hub))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as http:
        yield Env(hub, backend, f"http://{host}:{port}", http)
    await runner.cleanup()


async def joined_pair(env: Env) -> tuple[Client, Client]:
    alice, bob = await env.connect("alice"), await env.connect("bob")
    await alice.join()
    await bob.join()
    await alice.next(p.ParticipantJoined)
    return alice, bob


async def test_welcome_and_participant_joined(env: Env) -> None:
    alice = await env.connect("alice")
    welcome = await alice.join("room1", "Alice")
    assert welcome.room == "room1" and welcome.peer_id
    assert welcome.ice_mode == "all"
    assert welcome.ice_servers == [
        p.IceServerInfo(urls=["stun:stun.example.org:3478"]),
        p.IceServerInfo(urls=["turn:turn.example.org:3478"], username="u", credential="c"),
    ]
    assert welcome.participants == []
    assert welcome.resume_token

    bob = await env.connect("bob")
    bob_welcome = await bob.join("room1", None)
    assert bob_welcome.participants == [p.ParticipantInfo(peer_id=alice.peer_id, name="Alice")]
    assert bob_welcome.peer_id != alice.peer_id
    joined = await alice.next(p.ParticipantJoined)
    assert (joined.peer_id, joined.name) == (bob.peer_id, "bob")

    carol = await env.connect("carol")
    await carol.join("room2")
    await alice.sync()  # another room: alice hears nothing of carol
    assert env.peer(alice).room == "room1" and env.peer(carol).room == "room2"
    assert env.hub.roster.rooms() == {
        "room1": [
            p.ParticipantInfo(peer_id=alice.peer_id, name="Alice"),
            p.ParticipantInfo(peer_id=bob.peer_id, name="bob"),
        ],
        "room2": [p.ParticipantInfo(peer_id=carol.peer_id, name="carol")],
    }


async def test_a_recorder_is_announced_as_one(env: Env) -> None:
    alice = await env.connect("alice")
    await alice.join("room1", "Alice")
    rec = await env.connect("rec")
    await rec.send(p.Join(room="room1", name="rec", role="recorder"))
    rec.peer_id = (await rec.next(p.Welcome)).peer_id
    joined = await alice.next(p.ParticipantJoined)
    assert (joined.peer_id, joined.role) == (rec.peer_id, "recorder")
    # On the wire a plain participant's join carries no role; a recorder's does.
    assert b'"role":"recorder"' in p.encode(joined)
    bob = await env.connect("bob")
    welcome = await bob.join("room1")
    assert [(i.name, i.role) for i in welcome.participants] == [
        ("Alice", "participant"),
        ("rec", "recorder"),
    ]
    assert b'"role"' not in p.encode(await alice.next(p.ParticipantJoined))
    assert b'"role"' not in msgspec.json.encode(welcome.participants[0])
    await rec.next(p.ParticipantJoined)
    await rec.send({"type": "join", "room": "room1", "role": "king"})
    assert "role" in (await rec.error(ErrorCode.BAD_MESSAGE)).message


async def test_welcome_comes_before_an_offer_made_during_join(env: Env) -> None:
    env.backend.offer_on_join = True
    alice = await env.connect("alice")
    await alice.send(p.Join(room="room1"))
    alice.peer_id = (await alice.next(p.Welcome)).peer_id
    assert (await alice.next(p.ServerOffer)).sdp == "server-offer"
    assert (await alice.next(p.Candidate)).candidate is None
    await alice.send(p.Answer(sdp="client-answer"))
    await alice.sync()
    assert env.peer(alice).calls == [("answer", "client-answer")]


BIG = 300 * 1024  # over the 256 KiB frame limit, under aiohttp's 4x
MALFORMED: list[tuple[str, str | bytes, ErrorCode]] = [
    ("malformed json", '{"type": "offer", "sdp": ', ErrorCode.BAD_JSON),
    ("missing type", '{"sdp": "v=0"}', ErrorCode.BAD_MESSAGE),
    ("unknown type", '{"type": "kick", "peer_id": "x"}', ErrorCode.UNKNOWN_TYPE),
    ("wrong field type", '{"type": "offer", "sdp": 42}', ErrorCode.BAD_MESSAGE),
    ("missing field", '{"type": "answer"}', ErrorCode.BAD_MESSAGE),
    (
        "oversize sdp",
        json.dumps({"type": "offer", "sdp": "x" * (p.MAX_SDP_CHARS + 1)}),
        ErrorCode.BAD_MESSAGE,
    ),
    ("binary frame", b'{"type": "ping", "id": 1}', ErrorCode.BAD_MESSAGE),
    ("too large", json.dumps({"type": "ping", "id": "x" * BIG}), ErrorCode.TOO_LARGE),
    ("join again", '{"type": "join", "room": "room2"}', ErrorCode.ALREADY_JOINED),
    # Decoded again to name the type, it raised RecursionError: aiohttp logged it, the socket fell.
    (
        "deep nesting",
        '{"type": "ping", "id": ' + "[" * 1000 + "]" * 1000 + "}",
        ErrorCode.BAD_MESSAGE,
    ),
    ("huge ping id", '{"type": "ping", "id": ' + "9" * 31 + "}", ErrorCode.BAD_MESSAGE),
    ("layer unknown", '{"type": "set_layer", "track": "t", "layer": "x"}', ErrorCode.BAD_MESSAGE),
    ("layer no track", '{"type": "set_layer", "layer": "h"}', ErrorCode.BAD_MESSAGE),
    (
        "layer empty track",
        '{"type": "set_layer", "track": "", "layer": "h"}',
        ErrorCode.BAD_MESSAGE,
    ),
    (
        "unknown source",
        '{"type": "track_info", "track": "t", "source": "webcam"}',
        ErrorCode.BAD_MESSAGE,
    ),
    ("mute no flag", '{"type": "mute", "track": "t"}', ErrorCode.BAD_MESSAGE),
    ("mute not a bool", '{"type": "mute", "track": "t", "muted": 1}', ErrorCode.BAD_MESSAGE),
]


@pytest.mark.parametrize(
    ("frame", "code"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
async def test_bad_input_gets_its_code_and_changes_nothing_for_anyone(
    env: Env, frame: str | bytes, code: ErrorCode
) -> None:
    alice, bob = await joined_pair(env)
    await alice.send(frame)
    await alice.error(code)
    await alice.sync()  # still usable
    await bob.sync()  # and bob got nothing before his pong
    assert env.peer(alice).calls == [] and env.peer(bob).calls == []
    assert [m.peer_id for m in env.hub.roster.rooms()["room1"]] == [alice.peer_id, bob.peer_id]


@pytest.mark.hub_config(resume_grace=0)
async def test_absurd_frame_closes_the_socket_with_1009(env: Env) -> None:
    alice, bob = await joined_pair(env)
    await alice.send(json.dumps({"type": "ping", "id": "x" * (1024 * 1024 + 1)}))
    await alice._reader
    assert alice.ws.close_code == WSCloseCode.MESSAGE_TOO_BIG
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (alice.peer_id, "disconnected")


@pytest.mark.parametrize(
    "msg",
    [
        p.Offer(sdp="v=0"),
        p.Answer(sdp="v=0"),
        p.Candidate(candidate=None),
        p.Leave(),
        p.SetLayer(track="t", layer="h"),
        p.DescribeTrack(track="t", source="screen"),
        p.Mute(track="t", muted=True),
    ],
    ids=lambda m: type(m).__name__,
)
async def test_media_messages_before_join_are_not_joined(env: Env, msg: p.Msg) -> None:
    alice = await env.connect("alice")
    await alice.send(msg)
    await alice.error(ErrorCode.NOT_JOINED)
    await alice.sync()
    await alice.join()  # and joining still works


async def test_ping_pong(env: Env) -> None:
    alice = await env.connect("alice")
    for ping_id in (1, "abc", None):
        await alice.send(p.Ping(id=ping_id))
        assert (await alice.next(p.Pong)).id == ping_id
    assert alice.received[-1] == p.Pong()


async def test_offer_answer_and_candidates_reach_the_media_peer(env: Env) -> None:
    alice, bob = await joined_pair(env)
    await alice.send(p.Offer(sdp="client-offer"))
    assert (await alice.next(p.ServerAnswer)).sdp == "answer-to:client-offer"
    assert (await alice.next(p.Candidate)).candidate is None

    env.peer(alice).server_offer("renegotiate")
    assert (await alice.next(p.ServerOffer)).sdp == "renegotiate"
    await alice.next(p.Candidate)
    await alice.send(p.Answer(sdp="client-answer"))
    line = "1 1 udp 2130706431 192.0.2.1 50000 typ host"
    await alice.send({"type": "candidate", "candidate": {"candidate": line, "sdpMid": "0"}})
    await alice.send(
        {"type": "candidate", "candidate": {"candidate": f"candidate:{line}", "sdpMLineIndex": 0}}
    )
    await alice.send({"type": "candidate", "candidate": {"candidate": "", "sdpMid": "0"}})
    await alice.send({"type": "candidate", "candidate": None})
    await alice.sync()
    assert env.peer(alice).calls == [
        ("offer", "client-offer"),
        ("answer", "client-answer"),
        ("candidate", CandidateInit(f"candidate:{line}", sdp_mid="0")),
        ("candidate", CandidateInit(f"candidate:{line}", sdp_mline_index=0)),
        ("candidate", None),
        ("candidate", None),
    ]
    await bob.sync()


@pytest.mark.parametrize(
    ("method", "exc", "code"),
    [
        ("offer", NegotiationError("bad_sdp", "no m-line"), ErrorCode.BAD_SDP),
        ("candidate", NegotiationError("bad_candidate", "bad port"), ErrorCode.BAD_CANDIDATE),
        ("offer", NegotiationError("made_up", "oops"), ErrorCode.INTERNAL_ERROR),
        ("offer", RuntimeError("bug in the backend"), ErrorCode.INTERNAL_ERROR),
        ("answer", None, ErrorCode.NO_OFFER_PENDING),
    ],
)
async def test_backend_errors_become_error_messages(
    env: Env, method: str, exc: BaseException | None, code: ErrorCode
) -> None:
    alice, bob = await joined_pair(env)
    if exc is not None:
        env.backend.fail[method] = exc
    frame: p.Msg
    if method == "candidate":
        frame = p.Candidate(candidate=p.IceCandidate(candidate="candidate:1 1 udp 1 x 0 typ host"))
    else:
        frame = p.Offer(sdp="v=0") if method == "offer" else p.Answer(sdp="v=0")
    await alice.send(frame)
    err = await alice.error(code)
    if isinstance(exc, NegotiationError):
        assert err.message == exc.message
    await alice.sync()
    await bob.sync()
    assert not env.peer(alice).closed


async def test_failed_backend_join_leaves_no_trace(env: Env) -> None:
    env.backend.fail["join"] = RuntimeError("media plane down")
    alice = await env.connect("alice")
    await alice.send(p.Join(room="room1"))
    await alice.error(ErrorCode.INTERNAL_ERROR)
    assert env.hub.roster.rooms() == {}
    del env.backend.fail["join"]
    await alice.join()


@pytest.mark.hub_config(resume_grace=0)
async def test_closing_the_socket_is_disconnected(env: Env) -> None:
    alice, bob = await joined_pair(env)
    await alice.close()
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.name, left.reason) == (alice.peer_id, "alice", "disconnected")
    await eventually(lambda: "" if env.peer(alice).closed else "alice's media peer is open")
    assert [m.peer_id for m in env.hub.roster.rooms()["room1"]] == [bob.peer_id]
    await bob.close()
    await eventually(lambda: "" if not env.hub.roster.rooms() else f"{env.hub.roster.rooms()}")


async def test_leave_then_join_again(env: Env) -> None:
    alice, bob = await joined_pair(env)
    old_peer = env.peer(alice)
    await alice.send(p.Leave())
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (alice.peer_id, "left")
    await alice.sync()  # nothing sent back for leave
    assert old_peer.closed

    old_peer.signals.send_offer("stale")  # a media peer that outlives its stay reaches no one
    old_peer.signals.media_failed("stale")
    await alice.sync()

    welcome = await alice.join("room1")
    assert welcome.peer_id != old_peer.peer_id
    assert welcome.participants == [p.ParticipantInfo(peer_id=bob.peer_id, name="bob")]
    assert (await bob.next(p.ParticipantJoined)).peer_id == welcome.peer_id


async def test_media_failure_takes_the_participant_out(env: Env) -> None:
    alice, bob = await joined_pair(env)
    env.peer(alice).signals.media_failed("ICE failed")
    err = await alice.error(ErrorCode.MEDIA_FAILED)
    assert "ICE failed" in err.message
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (alice.peer_id, "failed")
    assert env.peer(alice).closed
    await alice.send(p.Offer(sdp="v=0"))
    await alice.error(ErrorCode.NOT_JOINED)
    await alice.join()


async def test_healthz(env: Env) -> None:
    async with env.http.get(f"{env.url}/healthz") as response:
        assert response.status == 200
        assert await response.text() == "ok"


async def test_hub_close_disconnects_everyone(env: Env) -> None:
    alice, bob = await joined_pair(env)
    await env.hub.close()
    await alice._reader
    await bob._reader
    assert alice.ws.close_code == WSCloseCode.GOING_AWAY
    assert env.peer(alice).closed and env.peer(bob).closed
    assert env.hub.roster.rooms() == {}


async def test_a_flood_gets_one_error_and_harms_no_one(env: Env) -> None:
    alice, bob = await joined_pair(env)
    for i in range(400):  # twice the default burst, faster than 50/s
        await alice.send(p.Ping(id=i))

    def answered() -> str:
        return "" if any(isinstance(m, p.Error) for m in alice.received) else "no error yet"

    await eventually(answered)
    await bob.sync()  # bob's session is served as usual meanwhile
    errors = [m for m in alice.received if isinstance(m, p.Error)]
    pongs = [m for m in alice.received if isinstance(m, p.Pong)]
    assert [e.code for e in errors] == [ErrorCode.RATE_LIMITED], errors
    assert "50 messages per second" in errors[0].message
    assert 200 <= len(pongs) < 400
    assert env.hub.stats.rate_limited == 400 - len(pongs)

    await asyncio.sleep(0.2)  # tokens come back at 50/s
    await alice.send(p.Ping(id="after"))

    def served() -> str:
        return "" if any(isinstance(m, p.Pong) and m.id == "after" for m in alice.received) else "-"

    await eventually(served)


async def test_a_client_that_keeps_flooding_is_disconnected(env: Env) -> None:
    alice, bob = await joined_pair(env)
    for i in range(1300):
        if alice.ws.closed:
            break
        await alice.send(p.Ping(id=i))
    await asyncio.wait_for(alice._reader, 5)
    assert alice.ws.close_code == 1008
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (alice.peer_id, "disconnected")


async def test_set_layer_reaches_the_media_peer_and_its_answer_comes_back(env: Env) -> None:
    alice, bob = await joined_pair(env)
    await alice.send(p.SetLayer(track="forwarded", layer="auto"))
    changed = await alice.next(p.LayerChanged)
    assert (changed.track, changed.layer, changed.requested) == ("forwarded", "l", "auto")
    await alice.send(p.SetLayer(track="gone", layer="h"))
    err = await alice.error(ErrorCode.UNKNOWN_TRACK)
    assert "gone" in err.message
    await alice.sync()
    await bob.sync()  # nothing reached bob
    assert env.peer(alice).calls == [
        ("set_layer", ("forwarded", "auto")),
        ("set_layer", ("gone", "h")),
    ]


async def test_track_info_and_mute_reach_the_media_peer_and_its_events_come_back(
    env: Env,
) -> None:
    alice, bob = await joined_pair(env)
    await alice.send(p.DescribeTrack(track="t1", source="screen"))
    await alice.send(p.Mute(track=f"{alice.peer_id}-video", muted=True))
    state = await alice.next(p.TrackState)
    assert (state.peer_id, state.kind, state.source, state.muted) == (
        alice.peer_id,
        "video",
        "camera",
        True,
    )
    await alice.send(p.Mute(track="gone", muted=False))
    assert "gone" in (await alice.error(ErrorCode.UNKNOWN_TRACK)).message
    await bob.sync()  # nothing reached bob
    assert env.peer(alice).calls == [
        ("describe_track", ("t1", "screen", False)),
        ("mute", (f"{alice.peer_id}-video", True)),
        ("mute", ("gone", False)),
    ]


async def test_welcome_says_whether_the_backend_takes_simulcast(env: Env) -> None:
    alice = await env.connect("alice")
    assert (await alice.join()).simulcast is False
    env.backend.simulcast = True
    bob = await env.connect("bob")
    assert (await bob.join()).simulcast is True
