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
is (`roles` holds everyone's). `disconnected` is set, with `disconnect_reason`, when the
session ends without `close()`: the signaling socket closed, or the media connection failed or
was refused. The client does not reconnect by itself (yet): a bot that must go on makes a new
Client (sfu.record does).

ICE servers and mode come from `welcome` (`ice_servers=` overrides the servers; in turn-only
mode an override with no TURN server keeps the welcome's, since relay-only needs a relay).
Fresh TURN credentials (`ice_servers` messages) are kept for the next gathering. A relay-only
client whose TURN allocation fails is `disconnected` at once, with a reason naming TURN, where
aiortc alone would stay `new` for ever (sfu.rtc.ice.turn_failure); it leaves the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, cast, get_args

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import is_rtx

from signaling import protocol as proto
from signaling.backend import IceServer
from signaling.log import bind

from .peerconfig import rtc_configuration
from .rtc import fastpath
from .rtc import receiver as rtc_receiver
from .rtc import simulcast as rtc_simulcast
from .rtc.ice import harden_stun, set_ice_addresses, turn_failure
from .rtc.iceservers import set_ice_servers
from .rtc.offer import create_offer
from .rtc.rollback import ice_role_set, rollback_offer
from .rtc.simulcast_send import describe_send
from .senderclock import SenderClock
from .simulcast_source import SimulcastTrack

logger = logging.getLogger(__name__)

# Error codes that refuse an offer: what it published is not, and publish() says so.
OFFER_REFUSALS = frozenset(
    {"bad_sdp", "media_failed", "too_large", "too_many_tracks", "publish_not_allowed"}
)


class ConnectionFailed(ConnectionError):
    """The media connection cannot be made (a TURN allocation failed, say); see the message."""


class ClientError(Exception):
    """The server refused something this client sent (an `error` message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


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


@dataclass
class _Offer:
    transceivers: list[RTCRtpTransceiver]
    tracks: list[MediaStreamTrack]
    ice_role_was_set: bool


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
    ) -> None:
        self.url = url
        # For wss:// with a certificate the system does not trust (a LAN's self-signed one).
        self.ssl_context = ssl_context
        self.room = room
        self.name = name
        self.token = token
        self.decode = decode
        self.role: proto.Role = role
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
        self.log = bind(logger, room=room, client=name or "-")
        self._ice_servers = None if ice_servers is None else list(ice_servers)
        harden_stun()
        if ice_addresses is not None:
            set_ice_addresses(ice_addresses)
        rtc_simulcast.install()  # the RID extensions, as the server negotiates them
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._offer: _Offer | None = None
        self._to_publish: list[MediaStreamTrack] = []
        self._published: set[MediaStreamTrack] = set()
        self._publish_waiters: list[tuple[set[MediaStreamTrack], asyncio.Future[None]]] = []
        self._welcome = asyncio.get_running_loop().create_future()
        self._track_queue: asyncio.Queue[RemoteTrack] = asyncio.Queue()
        self._track_callbacks: list[Callable[[RemoteTrack], None]] = []
        self._pongs: dict[int, asyncio.Future[None]] = {}
        self._layers: dict[str, str] = {}  # msid track id -> the layer the server last said
        # Every track the others publish, by msid track id, as the server last said it
        # (track_state), whether or not it is forwarded to us yet.
        self.track_states: dict[str, proto.TrackState] = {}
        # Who speaks in the room now, loudest first (active_speakers); `speakers_changed` is set
        # at each change (clear it to wait for the next).
        self.active_speakers: list[proto.SpeakerInfo] = []
        self.speakers_changed = asyncio.Event()
        self._ping_id = 0
        self._closed = False
        self.negotiations = 0
        self.rollbacks = 0
        # When the media connection first came up (loop time), for join-time measurements.
        self.connected_at: float | None = None
        self.connected = asyncio.Event()
        self.disconnected = asyncio.Event()
        self.disconnect_reason: str | None = None
        self.ice_mode = "all"  # from welcome

    # --- lifecycle ------------------------------------------------------------------------

    async def connect(self, timeout: float = 10.0) -> proto.Welcome:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(
            self.url, heartbeat=20.0, ssl=self.ssl_context or True
        )
        self._reader = asyncio.ensure_future(self._read())
        await self._send(
            proto.Join(room=self.room, name=self.name, token=self.token, role=self.role)
        )
        welcome: proto.Welcome = await asyncio.wait_for(asyncio.shield(self._welcome), timeout)
        return welcome

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._send(proto.Leave())
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()
        if self.pc is not None:
            await self.pc.close()
        for remote in self.remote_tracks.values():
            remote.ended.set()
        for _, waiter in self._publish_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("client closed"))

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
        if self.disconnected.is_set():
            raise ConnectionFailed(self.disconnect_reason or "disconnected")
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

    def on_track(self, callback: Callable[[RemoteTrack], None]) -> None:
        self._track_callbacks.append(callback)

    async def tracks(self) -> AsyncIterator[RemoteTrack]:
        """Remote tracks as they arrive (each one once), for as long as the client is open."""
        while not self._closed:
            yield await self._track_queue.get()

    async def next_track(self, timeout: float = 10.0) -> RemoteTrack:
        return await asyncio.wait_for(self._track_queue.get(), timeout)

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

    # --- signaling ---------------------------------------------------------------------------

    async def _send(self, msg: proto.Msg) -> None:
        assert self._ws is not None, "not connected"
        await self._ws.send_str(proto.encode(msg).decode())

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
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
            if not self._welcome.done():
                self._welcome.set_exception(ConnectionError("signaling socket closed"))
            self._lost("signaling socket closed")

    def _lost(self, reason: str) -> None:
        if self._closed or self.disconnected.is_set():
            return
        self.log.warning("session lost: %s", reason)
        self.disconnect_reason = reason
        self.disconnected.set()

    async def _handle(self, msg: proto.ServerMessage) -> None:
        if self.disconnected.is_set() and isinstance(
            msg, proto.ServerOffer | proto.ServerAnswer | proto.Candidate
        ):
            return  # left the room: nothing to negotiate
        if isinstance(msg, proto.Welcome):
            self._on_welcome(msg)
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
            self._on_error(ClientError(str(msg.code), msg.message))
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
        elif (
            isinstance(msg, proto.Pong)
            and isinstance(msg.id, int)
            and (future := self._pongs.pop(msg.id, None))
        ):
            future.set_result(None)

    def _on_welcome(self, msg: proto.Welcome) -> None:
        self.welcome = msg
        self.peer_id = msg.peer_id
        self.log = bind(logger, room=self.room, peer=msg.peer_id)
        self.participants = {p.peer_id: p.name for p in msg.participants}
        self.roles = {p.peer_id: p.role for p in msg.participants}
        self.ice_mode = msg.ice_mode
        self.pc = RTCPeerConnection(rtc_configuration(self._servers(msg.ice_servers), msg.ice_mode))
        self.pc.on("track", self._on_pc_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        if not self._welcome.done():
            self._welcome.set_result(msg)

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
        """Fresh TURN credentials: for the next gathering (a restart), not the running one."""
        if self.pc is not None and self.welcome is not None:
            set_ice_servers(
                self.pc, rtc_configuration(self._servers(msg.ice_servers), self.ice_mode)
            )
            self.log.debug("fresh ICE servers for the next gathering")

    async def _relay_failed(self) -> bool:
        """After gathering: relay-only with no relay candidate fails now, naming TURN."""
        if self.pc is None or (reason := turn_failure(self.pc)) is None:
            return False
        await self._fail(f"TURN relay unavailable: {reason}")
        return True

    async def _fail(self, reason: str) -> None:
        """The media connection cannot be made: leave the room, and say why (`disconnected`)."""
        if self._closed or self.disconnected.is_set():
            return
        for _, waiter in self._publish_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionFailed(reason))
        # Out of the room, so that the others do not wait for media that cannot come; the
        # socket stays open until close().
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._send(proto.Leave())
        self._lost(reason)

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

    def _on_connection_state(self) -> None:
        assert self.pc is not None
        state = self.pc.connectionState
        self.log.debug("connection %s", state)
        if state == "connected" and self.connected_at is None:
            self.connected_at = asyncio.get_running_loop().time()
            self.connected.set()
        elif state in ("failed", "closed"):
            self._lost(f"media connection {state}")

    def _on_error(self, error: ClientError) -> None:
        self.log.info("server error %s", error)
        self.errors.append(error)
        if not self._welcome.done():  # the join was refused: connect() says why
            self._welcome.set_exception(error)
        if error.code in OFFER_REFUSALS:
            for _, waiter in self._publish_waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        if error.code == "media_failed":  # the server took us out of the room
            self._lost(str(error))

    # --- negotiation --------------------------------------------------------------------------

    async def _offer_publications(self) -> None:
        async with self._lock:
            pc = self.pc
            if pc is None or pc.signalingState != "stable" or not self._to_publish:
                return  # the exchange in progress ends by calling us again
            if self.disconnected.is_set():
                return
            tracks, self._to_publish = self._to_publish, []
            role_was_set = ice_role_set(pc)
            added = [pc.addTransceiver(t, direction="sendonly") for t in tracks]
            for transceiver, track in zip(added, tracks, strict=True):
                if isinstance(track, SimulcastTrack):
                    track.attach(transceiver)
            self._offer = _Offer(added, tracks, role_was_set)
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
                    pc, offer.transceivers, ice_role_was_set=offer.ice_role_was_set
                )
                self._to_publish = offer.tracks + self._to_publish
                self.rollbacks += 1
                self.log.info("glare: rolled back our offer to answer the server's")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            if await self._relay_failed():
                return
            await self._send(proto.Answer(sdp=self._describe(pc.localDescription.sdp)))
            await self._send(proto.Candidate(candidate=None))
            self.negotiations += 1
            for receiver in self._update_remote_tracks():
                # Its RTCP task would otherwise run until the connection closes.
                await receiver.stop()
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
            self.negotiations += 1
            if self._offer is not None:
                self._published.update(self._offer.tracks)
                self._offer = None
            for tracks, waiter in self._publish_waiters:
                if not waiter.done() and tracks <= self._published:
                    waiter.set_result(None)
            self._publish_waiters = [(t, w) for t, w in self._publish_waiters if not w.done()]
        await self._offer_publications()

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

    # --- remote tracks ---------------------------------------------------------------------------

    def _on_pc_track(self, track: MediaStreamTrack) -> None:
        assert self.pc is not None
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        if not self.decode:
            rtc_receiver.capture_encoded_frames(transceiver.receiver)

    def _update_remote_tracks(self) -> list[RTCRtpReceiver]:
        """After applying a server offer: announce new forwarded tracks, end removed ones.

        Returns the receivers of the removed tracks, to be stopped.
        """
        assert self.pc is not None
        ended: list[RTCRtpReceiver] = []
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
            if sending and known is None:
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
                rtc_receiver.end_track(transceiver.receiver)
                ended.append(transceiver.receiver)
        return ended

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
