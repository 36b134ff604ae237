"""The Python client: one WebSocket to the hub and one RTCPeerConnection with the server.

Tests, bots and the load tester use it:

    async with Client("ws://127.0.0.1:8080/ws", "room1", name="bot") as client:
        await client.publish(VideoStreamTrack())
        async for remote in client.tracks():        # RemoteTrack(peer_id, kind, track)
            frame = await remote.track.recv()

Negotiation follows the rules of docs/protocol.md: the client offers when what it publishes
changes, the server offers when what it receives changes, and the client is *polite*. aiortc has
no rollback, so when the server's offer crosses ours (the server then ignores ours) the client
imitates one (sfu.rtc.rollback): it drops the transceivers that offer added, answers the server,
then offers the same tracks again on fresh transceivers.

`decode=False` receives encoded frames (`av.Packet`) instead of decoded ones, as a forwarding
bot or a load-test subscriber wants: no decoder is created.

Each RemoteTrack says which codec it arrives in (`codec`) and carries a SenderClock (`clock`,
sfu.senderclock), fed by the sender reports the server forwards: `clock.capture_time(pts)` is
when a frame was captured by its publisher's clock, the same clock for all of its tracks (what
a recorder aligns audio and video with). `role="recorder"` tells the others what this client
is (`roles` holds everyone's).

ICE servers and mode come from `welcome` (`ice_servers=` overrides the servers; in turn-only
mode an override with no TURN server keeps the welcome's, since relay-only needs a relay).
Fresh TURN credentials (`ice_servers` messages) are kept for the next gathering. A relay-only
client whose TURN allocation fails ends `failed` at once, with a reason naming TURN, where
aiortc alone would stay `new` for ever (sfu.rtc.ice.turn_failure); it leaves the room.

Recovery (the same state machine as the browser library, web/sfu-client.js):
`connecting -> connected -> reconnecting -> connected | failed` (and `closed` after close()),
each transition a StateChange given to the `on_state` callbacks. When the WebSocket goes, the
client connects again with exponential backoff and jitter (sfu.backoff) and sends `join` with
its `resume_token`: the server gives the same session back (same peer_id, the peer connection
and its tracks untouched, media flowing all along if the path works). If the server no longer
knows the session (`resume_failed`: it restarted, or the grace period passed), the client joins
afresh, on a new peer connection, and publishes its tracks again: remote tracks of the old
connection end and the new ones arrive through `tracks()` as usual. Once `reconnect_attempts`
attempts have failed, the client ends `failed` with the reason; `tracks()` then ends and
`publish()` raises, as after `close()`. `disconnected` (an asyncio.Event, with
`disconnect_reason`) is set when the client ends `failed`: the session is over without close().
A media path that goes silent while the socket lives (nothing received for `dead_path_timeout`
while something is expected; aiortc never says `disconnected`) is restarted in place
(restart_ice()); only when that fails does the client start over on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import Any, cast, get_args

import aiohttp
import msgspec
from aiortc import (
    MediaStreamTrack,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import is_rtx

from signaling import protocol as proto
from signaling.backend import IceServer
from signaling.log import bind

from .backoff import Backoff
from .pathwatch import PathWatch
from .payload import keyframe_check
from .peerconfig import rtc_configuration
from .rtc import datachannel as rtc_datachannel
from .rtc import fastpath, icerestart, liveness
from .rtc import jitter as rtc_jitter
from .rtc import receiver as rtc_receiver
from .rtc import sender as rtc_sender
from .rtc import simulcast as rtc_simulcast
from .rtc.ice import harden_stun, set_ice_addresses, turn_failure
from .rtc.icerestart import IceRestart
from .rtc.iceservers import set_ice_servers
from .rtc.offer import create_offer
from .rtc.rollback import ice_role_set, rollback_offer
from .rtc.simulcast_send import describe_send
from .senderclock import SenderClock
from .simulcast_source import SimulcastTrack

logger = logging.getLogger(__name__)

# After a `rate_limited` error, negotiation messages may have been dropped: send what is still
# unanswered again once the server's bucket has had time to refill.
RATE_LIMIT_RESYNC = 1.0  # seconds
# Error codes after which the server closes the socket on purpose: recovering would undo what
# it decided (an operator removed us, our identity joined elsewhere, our token is no good).
TERMINAL = frozenset(
    {
        "replaced",
        "removed",
        "room_closed",
        "token_required",
        "token_invalid",
        "token_expired",
        "token_not_yet_valid",
        "token_wrong_room",
    }
)
# Error codes that refuse an offer: what it published is not, and publish() says so.
OFFER_REFUSALS = frozenset(
    {"bad_sdp", "media_failed", "too_large", "too_many_tracks", "publish_not_allowed"}
)
# Dead-path detection of our own (aiortc never says `disconnected`): nothing received for this
# long while connected and receiving before -> restart ICE. Longer than the server's 2.5 s
# (sfu.participant.DEAD_PATH_TIMEOUT): when both sides see the silence the server's restart
# comes first, and we answer it rather than cross it with ours.
DEAD_PATH_TIMEOUT = 3.0  # seconds
DEAD_PATH_TICK = 0.25  # seconds between looks at what arrived
DEAD_PATH_RESTARTS = 3  # ICE restarts tried before starting over on a new connection


class ConnectionFailed(ConnectionError):
    """The client ended `failed` (see the message): the server is gone for good, or the media
    connection cannot be made (a TURN allocation failed, say)."""


class ClientError(Exception):
    """The server refused something this client sent (an `error` message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ClientState(StrEnum):
    CONNECTING = "connecting"  # the first join, until media flows (or there is none to flow)
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # the socket (or the media path) was lost; getting it back
    FAILED = "failed"  # gave up: see the reason
    CLOSED = "closed"  # close() was called


@dataclass(frozen=True, slots=True)
class StateChange:
    state: ClientState
    previous: ClientState
    reason: str | None  # why, in words, for reconnecting and failed


@dataclass(eq=False)
class RemoteTrack:
    """A track the server forwards to us, and whose it is.

    `track_id` is its msid track id in the server's SDP: what `Client.set_layer` names. `layer`
    is the simulcast layer the server last said it forwards (None without simulcast), and
    `layers` every layer it said, in order, with the loop time it said it.
    """

    peer_id: str
    kind: str
    track: MediaStreamTrack
    mid: str
    track_id: str = ""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    codec: str = ""  # the MIME type it is forwarded in, e.g. "video/VP8"
    clock: SenderClock = field(default_factory=SenderClock)
    layer: str | None = None
    requested: str = "auto"
    layers: list[tuple[float, str]] = field(default_factory=list)
    layer_changed: asyncio.Event = field(default_factory=asyncio.Event)
    # From the server's track_state: what the publisher says it is (camera, microphone, screen,
    # screen_audio) and whether it is muted now.
    source: str = ""
    muted: bool = False


@dataclass(frozen=True)
class DataMessage:
    """A data message from another participant (`sender`: its peer_id): `payload` is the JSON
    value it sent; `to`, the peer ids it sent it to (None: the whole room); `reliable`, which
    channel it came on."""

    sender: str
    payload: Any
    to: list[str] | None
    reliable: bool


@dataclass
class _Offer:
    transceivers: list[RTCRtpTransceiver]
    tracks: list[MediaStreamTrack]
    ice_role_was_set: bool
    data_channels: bool = False  # the offer that brought the data channels' m-line


class Client:
    def __init__(
        self,
        url: str,
        room: str,
        *,
        name: str | None = None,
        token: str | None = None,
        ice_servers: Sequence[IceServer] | None = None,
        ice_addresses: Sequence[str] | None = None,
        decode: bool = True,
        role: proto.Role = "participant",
        ssl_context: ssl.SSLContext | None = None,
        reconnect: bool = True,
        reconnect_attempts: int = 10,
        backoff: Backoff | None = None,
        heartbeat: float = 10.0,
        dead_path_timeout: float | None = DEAD_PATH_TIMEOUT,
        data: bool = False,
    ) -> None:
        self.url = url
        # For wss:// with a certificate the system does not trust (a LAN's self-signed one).
        self.ssl_context = ssl_context
        self.room = room
        self.name = name
        self.token = token
        self.decode = decode
        self.role: proto.Role = role
        self.reconnect = reconnect
        self.reconnect_attempts = reconnect_attempts
        self.backoff = backoff or Backoff()
        self.heartbeat = heartbeat
        self.dead_path_timeout = dead_path_timeout  # None: rely on the server's detection
        self.peer_id: str | None = None
        self.welcome: proto.Welcome | None = None
        self.participants: dict[str, str | None] = {}
        self.roles: dict[str, proto.Role] = {}
        self.remote_tracks: dict[str, RemoteTrack] = {}  # by mid
        # Dynacast: the layers of our published tracks the server says to send (by our
        # track id). Recorded only: our tracks have no simulcast encodings to pause.
        self.published_layers: dict[str, list[str]] = {}
        self.errors: list[ClientError] = []
        self.pc: RTCPeerConnection | None = None
        self.state = ClientState.CONNECTING
        self.state_reason: str | None = None
        self.log = bind(logger, room=room, client=name or "-")
        self._ice_servers = None if ice_servers is None else list(ice_servers)
        harden_stun()
        if ice_addresses is not None:
            set_ice_addresses(ice_addresses)
        rtc_simulcast.install()  # the RID extensions, as the server negotiates them
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._offer: _Offer | None = None
        self._to_publish: list[MediaStreamTrack] = []
        self._published: list[MediaStreamTrack] = []
        self._publish_waiters: list[tuple[set[MediaStreamTrack], asyncio.Future[None]]] = []
        self._welcome: asyncio.Future[proto.Welcome] = asyncio.get_running_loop().create_future()
        self._track_queue: asyncio.Queue[RemoteTrack | None] = asyncio.Queue()
        self._track_callbacks: list[Callable[[RemoteTrack], None]] = []
        self._state_callbacks: list[Callable[[StateChange], None]] = []
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._layers: dict[str, str] = {}  # msid track id -> the layer the server last said
        # Every track the others publish, by msid track id, as the server last said it
        # (track_state), whether or not it is forwarded to us yet.
        self.track_states: dict[str, proto.TrackState] = {}
        # Who speaks in the room now, loudest first (active_speakers); `speakers_changed` is set
        # at each change (clear it to wait for the next).
        self.active_speakers: list[proto.SpeakerInfo] = []
        self.speakers_changed = asyncio.Event()
        # Data channels: opened with the connection when `data` (see send_data(), data()).
        self.data_enabled = data
        self._channels: dict[str, RTCDataChannel] = {}
        self._channel_open: dict[str, asyncio.Event] = {}
        self._data_to_offer = False
        self._data_queue: asyncio.Queue[DataMessage] = asyncio.Queue()
        self._ping_id = 0
        self._closed = False
        self._last_answer: str | None = None  # our latest answer, until the next server offer
        self._rejoining = False  # a fresh join sent on this socket, its welcome still to come
        self._fresh_attempts = 0  # fresh joins since the client was last connected
        self._resync: asyncio.TimerHandle | None = None
        self.negotiations = 0
        self.rollbacks = 0
        self.reconnects = 0  # sockets opened again after a loss
        self.resumes = 0  # ...that got the same session back
        self.rejoins = 0  # ...that had to join afresh (new peer_id, new peer connection)
        # When the media connection first came up (loop time), for join-time measurements.
        self.connected_at: float | None = None
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()  # set when the client ends `failed`
        self.disconnect_reason: str | None = None
        self.ice_mode = "all"  # from welcome
        # The server's `going_away` (it is shutting down), until the next welcome: the next
        # attempt waits its `retry_after` and joins afresh.
        self.going_away: proto.GoingAway | None = None
        self._retry_after: float | None = None
        self._lost_at: float | None = None  # loop time we went `reconnecting`, until connected
        self.ice_restart: IceRestart | None = None  # with the connection (sfu.rtc.icerestart)
        self.ice_restarts = 0  # completed in place, whoever began them
        self.rebuilds = 0  # peer connections the server replaced, the session kept (`rebuild`)
        self._recovering_by: str | None = None  # how the recovery in progress goes, if known
        self._ice_restarted: asyncio.Future[bool] | None = None
        self.dead_paths = 0  # silences we took for a dead path (and restarted ICE for)
        # Seconds from noticing a dead path to media on a new pair, for each one we recovered
        # from in place (the figure the recovery log line gives).
        self.path_recoveries: list[float] = []
        self._path_watch: asyncio.Task[None] | None = None
        self._restart_by_rebuild: asyncio.Future[bool] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> proto.Welcome:
        """Join the room; raises (state `failed`) if that first attempt fails. Losses after
        this are recovered by the client itself (see the module doc)."""
        try:
            await self._open_socket(timeout)
            await self._send(self._join_message())
            welcome = await asyncio.wait_for(asyncio.shield(self._welcome), timeout)
        except BaseException as exc:
            await self._fail(f"could not join: {exc or type(exc).__name__}")
            raise
        return welcome

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._send(proto.Leave())
        await self._release("client closed")
        self._set_state(ClientState.CLOSED)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- API --------------------------------------------------------------------------------

    async def publish(
        self,
        *tracks: MediaStreamTrack,
        source: str = "camera",
        muted: bool = False,
        timeout: float = 10.0,
    ) -> None:
        """Send these tracks to the room; returns once the server has accepted them.

        `source` is `camera` (video: `camera`, audio: `microphone`) or `screen` (video:
        `screen`, audio: `screen_audio`); the others are told it, and whether the tracks start
        `muted` (see mute()). A `SimulcastTrack` (sfu.simulcast_source) is published as
        simulcast layers.
        """
        if self.state == ClientState.FAILED:
            raise ConnectionFailed(self.state_reason or "failed")
        if self.state == ClientState.CLOSED:
            raise ConnectionError("client closed")
        if source not in ("camera", "screen"):
            raise ValueError(f"source must be 'camera' or 'screen', not {source!r}")
        for track in tracks:
            await self._send(
                proto.DescribeTrack(track=track.id, source=_source(source, track.kind), muted=muted)
            )
        waiter = asyncio.get_running_loop().create_future()
        self._publish_waiters.append((set(tracks), waiter))
        self._to_publish.extend(tracks)
        await self._offer_publications()
        await asyncio.wait_for(waiter, timeout)

    def sender(self, track: MediaStreamTrack) -> RTCRtpSender | None:
        """The sender that carries a published track on the current connection."""
        if self.pc is None:
            return None
        for sender in self.pc.getSenders():
            if sender.track is track:
                return sender
        return None

    def on_track(self, callback: Callable[[RemoteTrack], None]) -> None:
        self._track_callbacks.append(callback)

    def on_state(self, callback: Callable[[StateChange], None]) -> None:
        """Call `callback` with each state transition (a bot follows recovery this way)."""
        self._state_callbacks.append(callback)

    async def wait_state(self, *states: ClientState, timeout: float = 30.0) -> ClientState:
        """Until the client is in one of `states` (returns it at once if it already is)."""
        if self.state in states:
            return self.state
        loop = asyncio.get_running_loop()
        reached: asyncio.Future[ClientState] = loop.create_future()

        def check(change: StateChange) -> None:
            if change.state in states and not reached.done():
                reached.set_result(change.state)

        self._state_callbacks.append(check)
        try:
            return await asyncio.wait_for(reached, timeout)
        finally:
            self._state_callbacks.remove(check)

    async def tracks(self) -> AsyncIterator[RemoteTrack]:
        """Remote tracks as they arrive (each one once), until the client is closed or fails;
        across reconnects (a fresh rejoin brings every track again, as new ones)."""
        while True:
            remote = await self._track_queue.get()
            if remote is None:
                self._track_queue.put_nowait(None)  # for any other reader
                return
            yield remote

    async def next_track(self, timeout: float = 10.0) -> RemoteTrack:
        remote = await asyncio.wait_for(self._track_queue.get(), timeout)
        if remote is None:
            self._track_queue.put_nowait(None)
            raise ConnectionError(f"client {self.state}: {self.state_reason}")
        return remote

    async def request_keyframe(self, remote: RemoteTrack) -> bool:
        """Ask the track's publisher (through the server) for a keyframe, e.g. to start a new
        file on; False when nothing was received on it yet."""
        assert self.pc is not None, "not connected"
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == remote.mid:
                return await rtc_receiver.request_keyframe(transceiver.receiver)
        return False

    async def ping(self, timeout: float = 5.0) -> float:
        """Round trip over the signaling socket, in seconds."""
        self._ping_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pongs[self._ping_id] = future
        start = asyncio.get_running_loop().time()
        await self._send(proto.Ping(id=self._ping_id))
        await asyncio.wait_for(future, timeout)
        return asyncio.get_running_loop().time() - start

    async def send_data(
        self,
        payload: Any,
        to: Sequence[str] | None = None,
        reliable: bool = True,
        timeout: float = 10.0,
    ) -> None:
        """Send a JSON value to everyone else in the room, or to the peer ids `to`, on the
        reliable channel (ordered, retransmitted) or the lossy one (unordered, never resent).
        Waits for the channel to open (the client must be made with `data=True`). The server
        refuses what it may not relay with an `error` (see `errors`): data_too_large,
        data_rate_limited, data_not_allowed."""
        kind = "reliable" if reliable else "lossy"
        if not self.data_enabled:
            raise RuntimeError("data channels are off: make the client with Client(..., data=True)")
        if kind not in self._channel_open:
            raise ConnectionError("not connected: no data channel yet")
        await asyncio.wait_for(self._channel_open[kind].wait(), timeout)
        message: dict[str, Any] = {"payload": payload}
        if to is not None:
            message["to"] = list(to)
        self._channels[kind].send(msgspec.json.encode(message).decode())

    async def data(self) -> AsyncIterator[DataMessage]:
        """Data messages from the others as they arrive, both channels (`data=True` only)."""
        if not self.data_enabled:
            raise RuntimeError("data channels are off: make the client with Client(..., data=True)")
        while not self._closed:
            yield await self._data_queue.get()

    async def next_data(self, timeout: float = 10.0) -> DataMessage:
        return await asyncio.wait_for(self._data_queue.get(), timeout)

    async def mute(self, track: MediaStreamTrack, muted: bool = True) -> None:
        """Mute (or unmute) a track this client publishes: the server stops forwarding it, and
        tells the others; unmuted, it forwards again from the next keyframe. The track goes on
        sending to the server meanwhile (aiortc has no way to pause a sender)."""
        await self._send(proto.Mute(track=track.id, muted=muted))

    async def set_layer(self, remote: RemoteTrack, layer: str) -> None:
        """Ask for a simulcast layer of a remote video track: `l`, `m`, `h`, or `auto` (the
        server's choice, the default). The server answers with the layer it forwards (see
        `RemoteTrack.layer`): at once, then again once it switched, on a keyframe."""
        if layer not in get_args(proto.LayerChoice):
            raise ValueError(f"layer must be one of {get_args(proto.LayerChoice)}, not {layer!r}")
        remote.requested = layer
        await self._send(
            proto.SetLayer(track=remote.track_id, layer=cast(proto.LayerChoice, layer))
        )

    async def wait_layer(self, remote: RemoteTrack, layer: str, timeout: float = 10.0) -> float:
        """Until the server says it forwards `layer` here; returns the loop time it said so."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while remote.layer != layer:
            remote.layer_changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"layer {layer} not forwarded; layers so far: {remote.layers}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(remote.layer_changed.wait(), left)
        return remote.layers[-1][0]

    async def send_raw(self, data: str | bytes) -> None:
        """Send a frame as it is, text or binary (tests of the server's validation use it)."""
        assert self._ws is not None, "not connected"
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    # --- state ------------------------------------------------------------------------------

    def _set_state(self, state: ClientState, reason: str | None = None) -> None:
        if state == self.state and reason == self.state_reason:
            return
        change = StateChange(state, self.state, reason)
        now = asyncio.get_running_loop().time()
        if state == ClientState.CONNECTED and self._lost_at is not None:
            # The one line per recovery: how long it took, and how.
            resumed = self.welcome is not None and self.welcome.resumed
            how = self._recovering_by or ("resumed" if resumed else "joined afresh")
            self._recovering_by = None
            self.log.info("recovered after %.2fs (%s): %s", now - self._lost_at, how, self.peer_id)
            self._lost_at = None
        else:
            self.log.info("%s -> %s%s", self.state, state, f" ({reason})" if reason else "")
        if state == ClientState.RECONNECTING and self._lost_at is None:
            self._lost_at = now
        self.state, self.state_reason = state, reason
        for callback in list(self._state_callbacks):
            try:
                callback(change)
            except Exception:
                self.log.exception("a state callback failed")

    async def _fail(self, reason: str) -> None:
        """Give up: release everything; tracks() ends and publish() raises."""
        if self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        self.disconnect_reason = reason
        self.disconnected.set()
        self._set_state(ClientState.FAILED, reason)
        if self._ws is not None and not self._ws.closed:
            # Out of the room, so that the others do not wait for media that cannot come.
            await self._send(proto.Leave())
        await self._release(reason)

    async def _release(self, reason: str) -> None:
        if self._resync is not None:
            self._resync.cancel()
            self._resync = None
        recovery, self._recovery = self._recovery, None
        if recovery is not None and recovery is not asyncio.current_task():
            recovery.cancel()
            # A timeout inside it may turn our cancellation into a TimeoutError.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await recovery
        await self._drop_socket()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._stop_path_watch()
        if self.ice_restart is not None:
            await self.ice_restart.abandon()
        if self.pc is not None:
            await self.pc.close()
        self._end_remote_tracks(self.pc)
        for track in {*self._published, *self._to_publish}:
            track.stop()  # as aiortc's own close() would have
        self._track_queue.put_nowait(None)
        if not self._welcome.done():
            self._welcome.set_exception(ConnectionError(reason))
            self._welcome.exception()  # retrieved: connect() may not be waiting for it
        for _, waiter in self._publish_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionFailed(reason))
        self._publish_waiters.clear()

    # --- the socket ----------------------------------------------------------------------------

    async def _open_socket(self, timeout: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        ws = await asyncio.wait_for(
            self._session.ws_connect(
                self.url, heartbeat=self.heartbeat or None, ssl=self.ssl_context or True
            ),
            timeout,
        )
        self._ws = ws
        self._reader = asyncio.ensure_future(self._read(ws))

    async def _drop_socket(self) -> None:
        ws, self._ws = self._ws, None
        reader, self._reader = self._reader, None
        if ws is not None:
            await ws.close()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def _join_message(self, resume: str | None = None) -> proto.Join:
        return proto.Join(
            room=self.room,
            name=self.name,
            token=self.token,
            role=self.role,
            resume=resume,
            data=self.data_enabled,
        )

    async def _send(self, msg: proto.Msg) -> bool:
        """Send now; False when there is no socket (what matters is sent again after resume)."""
        ws = self._ws
        if ws is None or ws.closed:
            self.log.debug("%s not sent: no socket", type(msg).__name__)
            return False
        try:
            await ws.send_str(proto.encode(msg).decode())
        except (ConnectionError, RuntimeError) as exc:
            self.log.debug("%s not sent: %s", type(msg).__name__, exc)
            return False
        return True

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    msg = proto.decode_server(frame.data)
                except Exception as exc:
                    self.log.warning("undecodable server message: %s", exc)
                    continue
                try:
                    await self._handle(msg)
                except Exception:
                    if self._closed:  # e.g. an answer to a socket close() already shut
                        self.log.debug("closing: dropped %s", type(msg).__name__, exc_info=True)
                    else:
                        self.log.exception("failed to handle %s", type(msg).__name__)
        finally:
            if ws is self._ws and not self._closed:
                # Not ours to close: the server went (a reset, a kill, a 1009...). Said so and
                # recovered from, never silently.
                why = ws.close_code if ws.close_code is not None else ws.exception()
                reason = f"signaling socket closed ({why})"
                if self.going_away is not None:
                    reason += f": the server is going away ({self.going_away.reason})"
                if not self._welcome.done():  # a join in flight will get no welcome now
                    self._welcome.set_exception(ConnectionError(reason))
                    self._welcome.exception()  # retrieved: connect() may not be waiting for it
                self._socket_lost(reason)

    def _socket_lost(self, reason: str) -> None:
        if self._recovery is not None or self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        self.log.warning("%s", reason)
        self._rejoining = False
        if not self.reconnect or self.welcome is None:
            self._recovery = asyncio.ensure_future(self._fail(reason))
            return
        self._recovery = asyncio.ensure_future(self._reconnect(reason))

    async def _reconnect(self, reason: str) -> None:
        """Open a socket again and resume the session (or join afresh), with backoff."""
        self._set_state(ClientState.RECONNECTING, reason)
        started = asyncio.get_running_loop().time()
        last = reason
        try:
            for attempt in range(1, self.reconnect_attempts + 1):
                await self._drop_socket()
                await asyncio.sleep(self._retry_delay(attempt))
                try:
                    await self._rejoin()
                except (
                    OSError,
                    aiohttp.ClientError,
                    TimeoutError,
                    ConnectionError,
                    ClientError,
                ) as exc:
                    last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    self.log.info("reconnect attempt %d failed: %s", attempt, last)
                    continue
                elapsed = asyncio.get_running_loop().time() - started
                how = "resumed" if self.welcome and self.welcome.resumed else "joined afresh"
                self.log.debug("reconnected after %.2fs (%s, attempt %d)", elapsed, how, attempt)
                self._recovery = None
                self._maybe_connected()
                return
        except asyncio.CancelledError:
            raise
        self._recovery = None
        await self._fail(f"{reason}; gave up after {self.reconnect_attempts} attempts ({last})")

    def _retry_delay(self, attempt: int) -> float:
        delay = self.backoff.delay(attempt, random.random())
        hint, self._retry_after = self._retry_after, None
        if hint is not None:  # the server said when to come back (going_away): no sooner
            delay = max(delay, hint * (1.0 + self.backoff.jitter * random.random()))
        return delay

    async def _rejoin(self, timeout: float = 5.0) -> None:
        self.reconnects += 1
        self._welcome = asyncio.get_running_loop().create_future()
        await self._open_socket(timeout)
        # A server that went away kept no session: join afresh rather than be refused first.
        token = None
        if self.welcome is not None and self.going_away is None:
            token = self.welcome.resume_token
        if not await self._send(self._join_message(resume=token)):
            raise ConnectionError("socket closed before join")
        await asyncio.wait_for(asyncio.shield(self._welcome), timeout)

    # --- server messages -------------------------------------------------------------------------

    async def _handle(self, msg: proto.ServerMessage) -> None:
        if self.state == ClientState.FAILED and isinstance(
            msg, proto.ServerOffer | proto.ServerAnswer | proto.Candidate
        ):
            return  # left the room: nothing to negotiate
        if isinstance(msg, proto.Welcome):
            await self._on_welcome(msg)
        elif isinstance(msg, proto.ServerOffer):
            await self._on_server_offer(msg.sdp)
        elif isinstance(msg, proto.ServerAnswer):
            await self._on_server_answer(msg.sdp)
        elif isinstance(msg, proto.Candidate):
            await self._on_candidate(msg.candidate)
        elif isinstance(msg, proto.ParticipantJoined):
            self.participants[msg.peer_id] = msg.name
            self.roles[msg.peer_id] = msg.role
        elif isinstance(msg, proto.ParticipantLeft):
            self.participants.pop(msg.peer_id, None)
            self.roles.pop(msg.peer_id, None)
        elif isinstance(msg, proto.Error):
            await self._on_error(ClientError(str(msg.code), msg.message))
        elif isinstance(msg, proto.IceServers):
            self._on_ice_servers(msg)
        elif isinstance(msg, proto.LayerChanged):
            self._on_layer(msg)
        elif isinstance(msg, proto.TrackState):
            self._on_track_state(msg)
        elif isinstance(msg, proto.TrackUnpublished):
            self.track_states.pop(msg.track, None)
        elif isinstance(msg, proto.ActiveSpeakers):
            self.active_speakers = msg.speakers
            self.speakers_changed.set()
        elif isinstance(msg, proto.PublishLayers):
            self.published_layers[msg.track] = list(msg.layers)
        elif isinstance(msg, proto.Rebuild):
            await self._on_rebuild(msg)
        elif isinstance(msg, proto.GoingAway):
            self.log.info("the server is going away (%s): back in %gs", msg.reason, msg.retry_after)
            self.going_away, self._retry_after = msg, msg.retry_after
        elif (
            isinstance(msg, proto.Pong)
            and isinstance(msg.id, int)
            and (future := self._pongs.pop(msg.id, None))
        ):
            future.set_result(None)

    async def _on_welcome(self, msg: proto.Welcome) -> None:
        resumed = msg.resumed and self.pc is not None and msg.peer_id == self.peer_id
        self._rejoining = False
        self.welcome = msg
        self.going_away = None
        self.participants = {p.peer_id: p.name for p in msg.participants}
        self.roles = {p.peer_id: p.role for p in msg.participants}
        self.ice_mode = msg.ice_mode
        if resumed:
            self.resumes += 1
            self.log.info("session resumed")
            await self._resync_negotiation()
        else:
            if self.pc is not None:
                self.rejoins += 1
                self.log.info("joined afresh as %s (was %s)", msg.peer_id, self.peer_id)
                await self._rebuild()
            self.peer_id = msg.peer_id
            self.log = bind(logger, room=self.room, peer=msg.peer_id)
            self._new_peer_connection(msg.ice_servers)
        if not self._welcome.done():
            self._welcome.set_result(msg)
        if not resumed and (self._to_publish or self._data_to_offer):
            await self._offer_publications()
        self._maybe_connected()

    def _new_peer_connection(self, ice_servers: Sequence[proto.IceServerInfo]) -> None:
        servers = self._servers(ice_servers)
        pc = self.pc = RTCPeerConnection(rtc_configuration(servers, self.ice_mode))
        pc.on("track", lambda track: self._on_pc_track(pc, track))
        pc.on("connectionstatechange", lambda: self._on_connection_state(pc))
        self.ice_restart = IceRestart(pc, on_done=self._on_ice_restart_done)
        if self.dead_path_timeout is not None:
            self._path_watch = asyncio.ensure_future(self._watch_path(pc, self.dead_path_timeout))
        if self.data_enabled:  # on each new connection: a fresh rejoin's too
            self._open_data_channels(pc)

    def _open_data_channels(self, pc: RTCPeerConnection) -> None:
        """Our two data channels, negotiated in the first exchange: our first offer carries
        them, even if we publish nothing, and so do the server's offers (we join with `data`:
        docs/protocol.md, "Data channels")."""
        self._channels = {
            "reliable": pc.createDataChannel("reliable"),
            "lossy": pc.createDataChannel("lossy", ordered=False, maxRetransmits=0),
        }
        rtc_datachannel.bundle_data_channels(pc)
        for kind, channel in self._channels.items():
            opened = self._channel_open[kind] = asyncio.Event()
            channel.on("open", opened.set)
            channel.on("message", partial(self._on_data, kind == "reliable"))
        self._data_to_offer = True

    def _on_data(self, reliable: bool, message: str | bytes) -> None:
        try:
            received = proto.decode_data_received(message)
            payload = msgspec.json.decode(received.payload)
        except msgspec.DecodeError as exc:
            self.log.warning("undecodable data message: %s", exc)
            return
        self._data_queue.put_nowait(DataMessage(received.sender, payload, received.to, reliable))

    def _servers(self, offered: Sequence[proto.IceServerInfo]) -> list[IceServer]:
        servers = [
            IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in offered
        ]
        override = self._ice_servers
        if override is None:
            return servers
        if self.ice_mode == "turn-only" and not any(_is_turn(s) for s in override):
            return override + [s for s in servers if _is_turn(s)]
        return override

    def _on_ice_servers(self, msg: proto.IceServers) -> None:
        """Fresh TURN credentials: for the next gathering (an ICE restart, or the peer
        connection of a fresh rejoin), not the running one."""
        if self.pc is not None and self.welcome is not None:
            set_ice_servers(
                self.pc, rtc_configuration(self._servers(msg.ice_servers), self.ice_mode)
            )
            self.log.debug("fresh ICE servers for the next gathering")

    async def _relay_failed(self) -> bool:
        """After gathering: relay-only with no relay candidate fails now, naming TURN."""
        if self.pc is None or (reason := turn_failure(self.pc)) is None:
            return False
        self._recovery = asyncio.ensure_future(self._fail(f"TURN relay unavailable: {reason}"))
        return True

    async def _rebuild(self) -> None:
        """Our session is gone (a new peer_id): a new peer connection, our tracks published
        again on it; what the old one received has ended."""
        async with self._lock:
            old, self.pc = self.pc, None
            pending = self._offer.tracks if self._offer is not None else []
            self._offer = None
            self._last_answer = None
            self._to_publish = [*self._published, *pending, *self._to_publish]
            self._published = []
            self._end_remote_tracks(old)
            self.remote_tracks.clear()
            await self._stop_path_watch()
            if self.ice_restart is not None:
                await self.ice_restart.abandon()
            if old is not None:
                await old.close()

    async def _on_rebuild(self, msg: proto.Rebuild) -> None:
        """The server replaces our peer connection, keeping the session (same peer_id): a new
        one with the ICE servers it gives, our tracks published again on it (same track ids:
        our publications and their subscribers carry on); what we received comes again on it
        as new remote tracks."""
        if self.pc is None or self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        self.log.warning("the server rebuilds our media connection: %s", msg.reason)
        self.rebuilds += 1
        self._recovering_by = "rebuilt"
        self._set_state(ClientState.RECONNECTING, f"media connection rebuilt: {msg.reason}")
        # An ICE restart of ours in flight (the server found it impossible): the new
        # connection coming up is what it waits for.
        self._restart_by_rebuild, self._ice_restarted = self._ice_restarted, None
        await self._rebuild()
        self._new_peer_connection(msg.ice_servers)
        await self._offer_publications()
        self._maybe_connected()

    def _maybe_connected(self) -> None:
        if self.state not in (ClientState.CONNECTING, ClientState.RECONNECTING):
            return
        if self._recovery is not None or self.welcome is None:
            return
        pc = self.pc
        if pc is None:
            return
        nothing_yet = not pc.getTransceivers() and not self._to_publish
        if pc.connectionState == "connected" or nothing_yet:
            self._fresh_attempts = 0
            self._set_state(ClientState.CONNECTED)

    def _on_layer(self, msg: proto.LayerChanged) -> None:
        now = asyncio.get_running_loop().time()
        self._layers[msg.track] = msg.layer
        for remote in self.remote_tracks.values():
            if remote.track_id == msg.track:
                remote.layer = msg.layer
                remote.layers.append((now, msg.layer))
                remote.layer_changed.set()

    def _on_track_state(self, msg: proto.TrackState) -> None:
        self.track_states[msg.track] = msg
        for remote in self.remote_tracks.values():
            if remote.track_id == msg.track and remote.peer_id == msg.peer_id:
                remote.source, remote.muted = msg.source, msg.muted

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc:
            return
        state = pc.connectionState
        self.log.debug("connection %s", state)
        if state == "connected":
            waiting, self._restart_by_rebuild = self._restart_by_rebuild, None
            if waiting is not None and not waiting.done():
                waiting.set_result(True)
            if self.connected_at is None:
                self.connected_at = asyncio.get_running_loop().time()
                self.connected.set()
            self._maybe_connected()
        elif state in ("failed", "closed"):
            self._start_over(f"media connection {state}", leave=True)

    def _start_over(self, reason: str, *, leave: bool) -> None:
        """Our media session is gone (`leave`: the server may not know yet): a fresh one on this
        socket (a new peer_id, a new peer connection, our tracks published again), after a
        backoff, within the same attempt budget as reconnects; or `failed` without recovery.
        Once per loss: the server's `media_failed` and our own connection's end come together."""
        if self._closed or self._rejoining or self._recovery is not None:
            return
        if self.state in (ClientState.FAILED, ClientState.CLOSED):
            return
        self._fresh_attempts += 1
        if not self.reconnect or self._ws is None or self._ws.closed:
            self._recovery = asyncio.ensure_future(self._fail(reason))
            return
        if self._fresh_attempts > self.reconnect_attempts:
            attempts = self.reconnect_attempts
            self._recovery = asyncio.ensure_future(
                self._fail(f"{reason}; gave up after {attempts} fresh joins")
            )
            return
        self._rejoining = True
        self._set_state(ClientState.RECONNECTING, reason)
        self._welcome = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(self._join_afresh(leave))
        task.add_done_callback(_log_failure)

    async def _join_afresh(self, leave: bool) -> None:
        if leave:
            await self._send(proto.Leave())
        await asyncio.sleep(self.backoff.delay(self._fresh_attempts, random.random()))
        if self._rejoining and not self._closed:
            await self._send(self._join_message())

    async def _on_error(self, error: ClientError) -> None:
        self.log.info("server error %s", error)
        self.errors.append(error)
        if error.code == "resume_failed" and not self._welcome.done():
            # The server no longer knows our session: join afresh on this socket.
            await self._send(self._join_message())
            return
        if not self._welcome.done():  # the join was refused: connect() says why
            self._welcome.set_exception(error)
        if error.code in TERMINAL and self._recovery is None:
            self._recovery = asyncio.ensure_future(self._fail(str(error)))
            return
        if error.code == "rate_limited":
            # Whatever we sent meanwhile may have been dropped: negotiation would wait for ever.
            if self._resync is None:
                loop = asyncio.get_running_loop()
                self._resync = loop.call_later(RATE_LIMIT_RESYNC, self._resync_after_rate_limit)
            return
        # A media failure ends the session, not the publication: with recovery on, the next
        # session publishes the same tracks, and publish() returns then.
        recovering = error.code == "media_failed" and self.reconnect
        if error.code in OFFER_REFUSALS and not recovering:
            for _, waiter in self._publish_waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        if error.code == "media_failed":
            # The server took us out of the room: join again on this socket, as a new session.
            self._start_over(f"media failed: {error.message}", leave=False)

    def _resync_after_rate_limit(self) -> None:
        self._resync = None
        task = asyncio.ensure_future(self._resync_negotiation(answer_too=True))
        task.add_done_callback(_log_failure)

    async def _resync_negotiation(self, *, answer_too: bool = False) -> None:
        """Send again what the server may never have got: our pending offer (after a resume or
        a rate limit) or, after a rate limit, our latest answer; each with end-of-candidates."""
        async with self._lock:
            pc = self.pc
            if pc is None:
                return
            if pc.signalingState == "have-local-offer" and pc.localDescription is not None:
                self.log.info("sending our pending offer again")
                await self._send(proto.Offer(sdp=self._describe(pc.localDescription.sdp)))
                await self._send(proto.Candidate(candidate=None))
            elif answer_too and pc.signalingState == "stable" and self._last_answer is not None:
                self.log.info("sending our latest answer again")
                await self._send(proto.Answer(sdp=self._last_answer))
                await self._send(proto.Candidate(candidate=None))

    # --- negotiation --------------------------------------------------------------------------

    async def _offer_publications(self) -> None:
        async with self._lock:
            pc = self.pc
            if pc is None or pc.signalingState != "stable":
                return  # the exchange in progress ends by calling us again
            if self.state == ClientState.FAILED or not (self._to_publish or self._data_to_offer):
                return
            tracks, self._to_publish = self._to_publish, []
            role_was_set = ice_role_set(pc)
            added = [pc.addTransceiver(t, direction="sendonly") for t in tracks]
            for transceiver, track in zip(added, tracks, strict=True):
                if isinstance(track, SimulcastTrack):
                    track.attach(transceiver)
                # A fresh rejoin publishes the same tracks on a new connection: the old one
                # must not stop them as it goes.
                rtc_sender.keep_track(transceiver.sender)
            self._offer = _Offer(added, tracks, role_was_set, self._data_to_offer)
            self._data_to_offer = False
            await pc.setLocalDescription(await create_offer(pc))
            if await self._relay_failed():
                return
            await self._send(proto.Offer(sdp=self._describe(pc.localDescription.sdp)))
            await self._send(proto.Candidate(candidate=None))

    async def _on_server_offer(self, sdp: str) -> None:
        async with self._lock:
            pc = self.pc
            assert pc is not None, "offer before welcome"
            if pc.signalingState == "have-local-offer" and self._offer is not None:
                # Glare: the server ignored our offer. Roll back, answer, offer again after.
                offer, self._offer = self._offer, None
                await rollback_offer(
                    pc,
                    offer.transceivers,
                    ice_role_was_set=offer.ice_role_was_set,
                    data_channels=offer.data_channels,
                )
                self._to_publish = offer.tracks + self._to_publish
                self._data_to_offer = self._data_to_offer or offer.data_channels
                self.rollbacks += 1
                self.log.info("glare: rolled back our offer to answer the server's")
            ice = self.ice_restart
            if pc.signalingState == "have-local-offer" and ice is not None and ice.in_progress:
                # Glare with our ICE restart: the server ignored our offer. Roll it back (it
                # added no transceiver), answer the server's; restart_ice() tries again.
                await rollback_offer(pc, [], ice_role_was_set=True)
                await ice.abandon()
                self.rollbacks += 1
                self.log.info("glare: dropped our ICE restart to answer the server's offer")
                if self._ice_restarted is not None and not self._ice_restarted.done():
                    self._ice_restarted.set_result(False)
            if ice is not None and ice.is_restart(sdp) and await ice.begin():
                self.log.info("the server restarts ICE: answering with new credentials")
                if self._ice_restarted is None or self._ice_restarted.done():
                    self._ice_restarted = asyncio.get_running_loop().create_future()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            if ice is not None:
                ice.remote_description(sdp)
            await pc.setLocalDescription(await pc.createAnswer())
            if await self._relay_failed():
                return
            if pc.sctp is not None and pc.sctp.mid is not None:
                self._data_to_offer = False  # the server's offer carried them (join.data)
            self._last_answer = self._describe(pc.localDescription.sdp)
            await self._send(proto.Answer(sdp=self._last_answer))
            await self._send(proto.Candidate(candidate=None))
            self.negotiations += 1
            self._update_remote_tracks()
        await self._offer_publications()

    def _describe(self, sdp: str) -> str:
        """Our description, with the RID lines of the simulcast tracks we publish (aiortc's
        SDP has no place for them: sfu.rtc.simulcast_send)."""
        assert self.pc is not None
        rids = {
            t.mid: t.sender.track.rids
            for t in self.pc.getTransceivers()
            if t.mid is not None and isinstance(t.sender.track, SimulcastTrack)
        }
        return describe_send(sdp, rids)

    async def _on_server_answer(self, sdp: str) -> None:
        async with self._lock:
            pc = self.pc
            if pc is None or pc.signalingState != "have-local-offer":
                self.log.warning("answer without an offer of ours: ignored")
                return
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            if self.ice_restart is not None:
                self.ice_restart.remote_description(sdp)
            self.negotiations += 1
            if self._offer is not None:
                self._published.extend(self._offer.tracks)
                self._offer = None
            published = set(self._published)
            for tracks, waiter in self._publish_waiters:
                if not waiter.done() and tracks <= published:
                    waiter.set_result(None)
            self._publish_waiters = [(t, w) for t, w in self._publish_waiters if not w.done()]
        await self._offer_publications()
        self._maybe_connected()

    async def _on_candidate(self, candidate: proto.IceCandidate | None) -> None:
        # The server (aiortc) puts all its candidates in its SDP; only end-of-candidates comes
        # here, and it is what lets ICE fail rather than wait for ever.
        if self.pc is None or self.pc.remoteDescription is None:
            return
        if candidate is None:
            await self.pc.addIceCandidate(None)
            return
        text = candidate.candidate.removeprefix("candidate:")
        if not text:
            await self.pc.addIceCandidate(None)
            return
        parsed = aiortc_sdp.candidate_from_sdp(text)
        parsed.sdpMid = None
        parsed.sdpMLineIndex = 0
        await self.pc.addIceCandidate(parsed)

    # --- ICE restart ------------------------------------------------------------------------

    async def restart_ice(self, attempts: int = 3, backoff: float = 0.5) -> bool:
        """Restart ICE in place (new credentials and candidates, same DTLS and tracks): for a
        path that died or a network that changed. Up to `attempts` offers, `backoff` seconds
        doubling between them; True once a new pair carries the media. The client calls it
        itself when it stops hearing from the server (`dead_path_timeout`), and the server
        restarts ICE by itself when it stops hearing from us (its DEAD_PATH_TIMEOUT); this is
        also for what only the application knows (a network change). A restart the server
        began meanwhile counts as ours: we wait for its outcome."""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
            if self._closed or self.disconnected.is_set():
                return False
            done = await self._offer_ice_restart()
            if done is None:
                continue
            try:  # the server's answer may never come: the checks' own deadline, and some
                if await asyncio.wait_for(done, icerestart.DEADLINE + 5.0):
                    return True
            except TimeoutError:
                if self.ice_restart is not None:
                    await self.ice_restart.abandon()
        return False

    async def _offer_ice_restart(self) -> asyncio.Future[bool] | None:
        async with self._lock:
            pc, ice = self.pc, self.ice_restart
            if pc is None or ice is None:
                return None
            restarted = self._ice_restarted
            if ice.in_progress and restarted is not None and not restarted.done():
                return restarted  # the server's: its outcome is ours
            if pc.signalingState != "stable":
                return None
            if not await ice.begin():
                self.log.warning("ICE restart impossible in place (the connection is gone)")
                return None
            self._ice_restarted = asyncio.get_running_loop().create_future()
            self.log.info("restarting ICE")
            await pc.setLocalDescription(await create_offer(pc))
            await self._send(proto.Offer(sdp=self._describe(pc.localDescription.sdp)))
            await self._send(proto.Candidate(candidate=None))
            return self._ice_restarted

    def _on_ice_restart_done(self, succeeded: bool, seconds: float) -> None:
        if succeeded:
            self.ice_restarts += 1
            self.log.info("recovered: ICE restart in place took %.3f s", seconds)
        else:
            self.log.warning("ICE restart failed after %.3f s", seconds)
        if self._ice_restarted is not None and not self._ice_restarted.done():
            self._ice_restarted.set_result(succeeded)

    async def _watch_path(self, pc: RTCPeerConnection, timeout: float) -> None:
        """Our own dead-path detection (sfu.pathwatch): what the connection has received,
        looked at every DEAD_PATH_TICK; a silence of `timeout` while connected restarts ICE,
        and when DEAD_PATH_RESTARTS restarts cannot bring the path back, we start over on a new
        connection (the recovery of a failed one). Only while we expect to hear the server
        (`_expecting`): a publisher-only client still gets its receiver reports (every
        0.5-1.5 s), a subscriber its media."""
        loop = asyncio.get_running_loop()
        watch = PathWatch(timeout)
        while pc is self.pc and not self._closed:
            await asyncio.sleep(DEAD_PATH_TICK)
            now = loop.time()
            if not watch.observe(liveness.datagrams_received(pc), self._expecting(pc), now):
                continue
            self.dead_paths += 1
            self.log.warning(
                "nothing received for %.1f s: the path looks dead, restarting ICE",
                watch.silent_for(now),
            )
            if await self.restart_ice(attempts=DEAD_PATH_RESTARTS):
                took = loop.time() - now
                self.path_recoveries.append(took)
                self.log.info("recovered from a dead path: ICE restart in place, %.3f s", took)
                watch.rearm(loop.time())
            elif pc is self.pc and not self._closed:
                self._start_over(
                    f"media path dead; {DEAD_PATH_RESTARTS} ICE restarts failed", leave=True
                )
                return

    def _expecting(self, pc: RTCPeerConnection) -> bool:
        """Whether the server should be sending us something every second or so: its receiver
        reports while we publish, media (and sender reports) while it forwards us a track that
        is not muted. Not during a restart, nor while the socket is being recovered."""
        ice = self.ice_restart
        if self.state != ClientState.CONNECTED or pc.connectionState != "connected":
            return False
        if ice is not None and ice.in_progress:
            return False
        return bool(self._published) or any(
            not r.ended.is_set() and not r.muted for r in self.remote_tracks.values()
        )

    async def _stop_path_watch(self) -> None:
        task, self._path_watch = self._path_watch, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- remote tracks ---------------------------------------------------------------------------

    def _on_pc_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        if rtc_receiver.decoding_started(transceiver.receiver):
            # An m-line the server reused for another track: its receiver goes on, into this
            # new track (its encoded-frame sink and jitter buffer stay).
            rtc_receiver.follow_new_track(transceiver.receiver)
            return
        if not self.decode:
            rtc_receiver.capture_encoded_frames(transceiver.receiver)
        if track.kind == "video":
            # A loss no retransmission repairs would hold aiortc's jitter buffer for seconds.
            rtc_jitter.skip_lost_packets(transceiver.receiver, keyframe_check)

    def _end_remote_tracks(self, pc: RTCPeerConnection | None) -> None:
        for remote in self.remote_tracks.values():
            remote.ended.set()
        if pc is not None:
            for transceiver in pc.getTransceivers():
                rtc_receiver.end_track(transceiver.receiver)

    def _update_remote_tracks(self) -> None:
        """After applying a server offer: announce new forwarded tracks, end removed ones.

        The server reuses the m-line of a track that ended for a later one (a new msid): the
        receiver is kept, and its next track is a new RemoteTrack.
        """
        assert self.pc is not None
        description = aiortc_sdp.SessionDescription.parse(self.pc.remoteDescription.sdp)
        by_mid: dict[str, Any] = {m.rtp.muxId: m for m in description.media}
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            if mid is None or (media := by_mid.get(mid)) is None:
                continue
            if transceiver.receiver.track is None:
                continue
            sending = media.direction in ("sendonly", "sendrecv")
            known = self.remote_tracks.get(mid)
            if sending and (known is None or known.ended.is_set()):
                stream_id, _, track_id = (media.msid or "").partition(" ")
                remote = self._remote_track(stream_id, media, transceiver)
                remote.track_id = track_id
                if (state := self.track_states.get(track_id)) is not None:
                    remote.source, remote.muted = state.source, state.muted
                if (layer := self._layers.get(track_id)) is not None:
                    remote.layer = layer
                    remote.layers.append((asyncio.get_running_loop().time(), layer))
                self.remote_tracks[mid] = remote
                self._track_queue.put_nowait(remote)
                for callback in self._track_callbacks:
                    callback(remote)
            elif not sending and known is not None and not known.ended.is_set():
                known.ended.set()
                # aiortc gives the receiver a new track (and a `track` event) when it is reused.
                rtc_receiver.release_track(transceiver.receiver)

    def _remote_track(
        self, peer_id: str, media: Any, transceiver: RTCRtpTransceiver
    ) -> RemoteTrack:
        # The server lists the codec it forwards in first (sfu.rtc.fastpath.prefer_codec).
        codec = next((c for c in media.rtp.codecs if not is_rtx(c)), None)
        receiver = transceiver.receiver
        clock = SenderClock(
            codec.clockRate if codec is not None else 90_000,
            partial(rtc_receiver.rtp_to_pts, receiver),
        )
        mid = transceiver.mid
        assert mid is not None
        if mid not in self.remote_tracks:  # a reused m-line's receiver is tapped already
            fastpath.tap_sender_reports(receiver, partial(self._on_sender_report, mid))
        return RemoteTrack(
            peer_id,
            media.kind,
            receiver.track,
            mid,
            codec=codec.mimeType if codec is not None else "",
            clock=clock,
        )

    def _on_sender_report(
        self, mid: str, ssrc: int, ntp_timestamp: int, rtp_timestamp: int
    ) -> None:
        remote = self.remote_tracks.get(mid)
        if remote is not None and not remote.ended.is_set():
            remote.clock.add(ntp_timestamp, rtp_timestamp)


def _source(source: str, kind: str) -> proto.Source:
    if source == "screen":
        return "screen" if kind == "video" else "screen_audio"
    return "camera" if kind == "video" else "microphone"


def _is_turn(server: IceServer) -> bool:
    return any(url.startswith("turn") for url in server.urls)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("client task failed", exc_info=exc)
