"""Fuzzing the live server: broken frames from the protocol's schema, and random datagrams.

Both run against a real server (hub, media plane, aiortc) on a loop of its own thread
(tests/sfu/livethread.py), driven by hypothesis. A log handler fails the test on any record at
ERROR or above (aiohttp logs what escapes a handler there, asyncio a task's lost exception). Time
is bounded: a fixed number of examples, derandomized, so that CI runs the same frames each time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.rtc.candidates import selected_pair_addresses
from sfu.server import RunningServer
from signaling.config import HubConfig
from signaling.limits import Limits
from signaling.protocol import ProtocolError, decode_client
from tests.conftest import LOOPBACK
from tests.sfu.fuzzframes import Frame, datagrams, frames, garbage_sdp
from tests.sfu.livethread import LiveServer
from tests.util import recv

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_BYTES = HubConfig().max_message_bytes
# aioice and aiortc, on the live thread, use the random module while hypothesis draws on this one:
# hypothesis takes that for a strategy using it, and warns.
pytestmark = pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")


class ErrorLog(logging.Handler):
    """Every record at ERROR or above, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def check(self) -> None:
        assert not self.records, "errors logged:\n" + "\n".join(
            self.format(r) for r in self.records[:5]
        )


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def live(errors: ErrorLog) -> Iterator[LiveServer]:
    # No rate limits and no join timeout: every frame is answered, however fast they come.
    limits = Limits(message_rate=0, byte_rate=0, join_timeout=0)
    with LiveServer(limits=limits) as running:
        yield running


class Fuzzer:
    """One socket that sends each frame, then a ping as a barrier: what came before the pong
    is the frame's answer."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.ids = itertools.count()
        self.joined = False
        # Told `rebuild`: a real client makes a new connection with new ICE credentials; the
        # fuzzer's fixed offers carry the replaced connection's, which the server ignores.
        self.replaced = False
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(self.server.url, max_msg_size=0)
        await self.exchange(json.dumps({"type": "join", "room": "fuzz", "name": "fuzzer"}))

    async def exchange(self, frame: Frame) -> list[dict[str, Any]]:
        assert self.ws is not None and not self.ws.closed, "the server closed the socket"
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)
        barrier = f"barrier-{next(self.ids)}"
        await self.ws.send_str(json.dumps({"type": "ping", "id": barrier}))
        replies: list[dict[str, Any]] = []
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 20)
            assert msg.type == aiohttp.WSMsgType.TEXT, f"socket {msg.type} after {frame[:200]!r}"
            reply = json.loads(msg.data)
            if reply == {"type": "pong", "id": barrier}:
                break
            replies.append(reply)
        self._follow(replies)
        return replies

    def _follow(self, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            if reply["type"] == "welcome":
                self.joined, self.replaced = True, False
            elif reply["type"] == "rebuild":
                self.replaced = True
            elif reply["type"] == "error" and reply["code"] in ("media_failed", "not_joined"):
                self.joined = False

    async def rejoin(self) -> None:
        if self.joined:
            await self.exchange(json.dumps({"type": "leave"}))
            self.joined = False
        await self.exchange(json.dumps({"type": "join", "room": "fuzz-sdp"}))
        assert self.joined

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()


@pytest.fixture(scope="module")
def fuzzer(live: LiveServer) -> Iterator[Fuzzer]:
    assert live.server is not None
    with live.started(Fuzzer(live.server)) as client:
        yield client


def expected(frame: Frame) -> tuple[str | None, str | None]:
    """(the error code the hub must answer with, None if the frame is a valid message; its type)."""
    try:
        msg = decode_client(frame, max_bytes=MAX_BYTES)
    except ProtocolError as exc:
        return str(exc.code), None
    tag = msg.__struct_config__.tag
    return None, tag if isinstance(tag, str) else None


@FUZZ
@given(frame=frames)
def test_broken_frames_are_answered_and_harm_nothing(
    live: LiveServer, fuzzer: Fuzzer, errors: ErrorLog, frame: Frame
) -> None:
    was_joined = fuzzer.joined and not fuzzer.replaced
    replies = live.run(fuzzer.exchange(frame))
    codes = [r["code"] for r in replies if r["type"] == "error"]
    assert "internal_error" not in codes, (frame[:300], replies)
    code, kind = expected(frame)
    if code is not None:  # refused before anything else looks at it: exactly its error
        assert [(r["type"], r.get("code")) for r in replies] == [("error", code)], (
            frame[:300],
            replies,
        )
    elif kind == "offer" and was_joined:  # the media plane answers, rebuilds, or says why not
        assert [r["type"] for r in replies][:1] in (["answer"], ["error"], ["rebuild"]), (
            frame[:300],
            replies,
        )
    errors.check()


@FUZZ
@given(sdp=garbage_sdp())
def test_garbage_offers_are_answered_or_refused(
    live: LiveServer, fuzzer: Fuzzer, errors: ErrorLog, sdp: str
) -> None:
    # Each on a fresh participant, as its first offer: most of aiortc's crashes were there.
    live.run(fuzzer.rejoin())
    replies = live.run(fuzzer.exchange(json.dumps({"type": "offer", "sdp": sdp})))
    kinds = [(r["type"], r.get("code")) for r in replies]
    assert kinds[:1] in (
        [("answer", None)],
        [("error", "bad_sdp")],
        [("error", "too_many_tracks")],
    ), (sdp, replies)
    errors.check()


class Call:
    """Alice publishes, bob receives, on the live server's loop; the datagrams aim at the media
    ports of both (the server's end of each one's nominated ICE pair)."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.clients: list[Client] = []
        self.track: Any = None
        self.targets: list[tuple[str, int]] = []

    async def start(self) -> None:  # on the live loop, where the clients must be made
        self.alice = Client(self.server.url, "fuzz-call", name="alice", ice_addresses=LOOPBACK)
        self.bob = Client(self.server.url, "fuzz-call", name="bob", ice_addresses=LOOPBACK)
        self.clients = [self.alice, self.bob]
        await self.alice.connect()
        await self.bob.connect()
        await self.alice.publish(TestPatternTrack(160, 120, fps=15))
        self.track = (await self.bob.next_track()).track
        await recv(self.track)
        for participant in self.server.backend.participants():
            addresses = selected_pair_addresses(participant.pc)
            if participant.room.name == "fuzz-call" and addresses is not None:
                self.targets.append(addresses.local)
        assert len(self.targets) == 2, self.targets

    async def states(self) -> list[str]:
        return [
            p.pc.connectionState
            for p in self.server.backend.participants()
            if p.room.name == "fuzz-call"
        ]

    async def frames(self, n: int) -> tuple[int, int]:
        for _ in range(n):
            frame = await recv(self.track, 5)
        return frame.width, frame.height

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture(scope="module")
def call(live: LiveServer) -> Iterator[Call]:
    assert live.server is not None
    with live.started(Call(live.server)) as running:
        yield running


@FUZZ
@given(batch=st.lists(datagrams, min_size=1, max_size=8))
def test_random_datagrams_do_not_disturb_a_call(
    live: LiveServer, call: Call, errors: ErrorLog, batch: list[bytes]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for target in call.targets:
            for datagram in batch:
                s.sendto(datagram, target)
    assert live.run(call.states()) == ["connected", "connected"]
    errors.check()


def test_the_call_went_on_through_the_datagrams(live: LiveServer, call: Call) -> None:
    assert live.run(call.frames(15)) == (160, 120)  # a second of video, still decoded
    assert live.run(call.states()) == ["connected", "connected"]


def test_a_normal_call_works_after_the_fuzzing(live: LiveServer, errors: ErrorLog) -> None:
    assert live.server is not None
    width = live.run(_call(live.server))
    assert width == 160
    errors.check()


async def _call(server: RunningServer, room: str = "after-fuzz") -> int:
    alice = Client(server.url, room, name="alice", ice_addresses=LOOPBACK)
    bob = Client(server.url, room, name="bob", ice_addresses=LOOPBACK)
    try:
        await alice.connect()
        await bob.connect()
        await alice.publish(TestPatternTrack(160, 120, fps=15))
        frame = await recv((await bob.next_track()).track)
        return int(frame.width)
    finally:
        await alice.close()
        await bob.close()
