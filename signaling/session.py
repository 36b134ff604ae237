"""Session: one client WebSocket; Membership: one stay of that session in a room.

A Session reads frames in order and handles each to completion before reading the next, so one
client's backend calls never overlap (what signaling.backend promises the media plane) and a client
that floods us is slowed by TCP instead of by our memory. A media failure reported by the backend
takes the same lock, so it cannot interleave with a frame either.

Everything the server sends goes through one queue per session, drained by one writer task: sends
keep their order, never block the caller and never raise into it, which is what lets the roster
broadcast and the backend signal (PeerSignals methods are synchronous) from anywhere.

A Membership is the PeerSignals handed to MediaBackend.join. It exists per join, not per socket,
so a MediaPeer that keeps talking after its membership ended cannot reach the client's next stay.
Until the `welcome` is queued it holds what the backend signals, since the backend may offer
during join and a client must see `welcome` first. When the socket goes without a `leave`, the
membership is parked (signaling.resume) rather than ended, and a `join` with its resume token on
another socket moves it there: a membership outlives sockets, a session never outlives its socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, assert_never, cast

import msgspec
from aiohttp import WSCloseCode, WSMsgType, web

from signaling.auth import Admission, TokenError, admit
from signaling.backend import (
    ALL_GRANTS,
    CandidateInit,
    DataRefused,
    Grants,
    IceServer,
    MediaBackend,
    MediaPeer,
    NegotiationError,
    PublishedTrack,
    RoomEvent,
    SpeakersChanged,
    TrackEnded,
)
from signaling.config import HubConfig
from signaling.log import ContextLogger, bind
from signaling.metrics import HubStats
from signaling.protocol import (
    ActiveSpeakers,
    Answer,
    Candidate,
    ClientMessage,
    DescribeTrack,
    ErrorCode,
    GoingAway,
    GrantInfo,
    IceCandidate,
    IceServerInfo,
    IceServers,
    Join,
    LayerChanged,
    LeaveReason,
    Msg,
    Mute,
    Offer,
    Ping,
    Pong,
    ProtocolError,
    PublishLayers,
    Rebuild,
    Role,
    ServerAnswer,
    ServerOffer,
    SetLayer,
    SpeakerInfo,
    TrackState,
    TrackUnpublished,
    Welcome,
    decode_client,
    encode,
)
from signaling.protocol import Error as ErrorMsg
from signaling.protocol import Leave as LeaveMsg
from signaling.ratelimit import FrameLimiter, Verdict
from signaling.resume import ResumeDesk
from signaling.roster import Roster

# A client whose socket has this many messages waiting is not reading; the heartbeat would catch
# it too, but only after its queue grew for up to 1.5 heartbeats.
MAX_OUTBOX: Final = 1024
# Error codes of the media plane's limits, and the limit each counts as in the metrics.
MEDIA_LIMITS: Final = {"too_many_tracks": "tracks", "too_many_candidates": "candidates"}
# The close code of a socket whose session its client resumed on another socket.
CLOSE_RESUMED_ELSEWHERE: Final = 4001


class Membership:
    def __init__(
        self,
        session: Session,
        room: str,
        peer_id: str,
        name: str | None,
        log: ContextLogger,
        role: Role = "participant",
        *,
        identity: str | None = None,
        grants: Grants = ALL_GRANTS,
    ) -> None:
        # None while parked (signaling.resume): the socket went, the client may come back.
        self.session: Session | None = session
        self.room = room
        self.peer_id = peer_id
        self.name = name
        self.role: Role = role
        self.identity = identity
        self.grants = grants
        self.log = log
        self.media: MediaPeer | None = None
        self._held: list[Msg] | None = []
        self._attached = True
        self.ended = False  # by the server (Session.end): never to be resumed
        self._ice_refresh: asyncio.Task[None] | None = None
        # Set while parked: ends the stay at once (a media failure, an operator, a new join
        # of the same identity), with this reason.
        self.on_parked_end: Callable[[LeaveReason], None] | None = None
        self.lost_at: float | None = None  # monotonic time its socket went, until resumed

    def send(self, msg: Msg) -> None:
        # While parked, nothing can reach the client: the resumed `welcome` carries who is in
        # the room, and the media peer sends a pending offer again (MediaPeer.resumed).
        if self.session is not None:
            self.session.send(msg)

    def release(self) -> None:
        """The welcome is queued: let held and future signals through."""
        held, self._held = self._held or [], None
        for msg in held:
            self.send(msg)

    def detach(self) -> None:
        """This stay is over: whatever the backend signals from now on is dropped."""
        self._attached = False
        self._held = None
        if self._ice_refresh is not None:
            self._ice_refresh.cancel()

    def refresh_ice_servers(self, config: HubConfig) -> None:
        """Send fresh TURN credentials before the current ones expire, for as long as we stay."""
        if config.ice.refreshes_credentials and self._ice_refresh is None:
            self._ice_refresh = asyncio.create_task(self._send_fresh_ice_servers(config))

    async def _send_fresh_ice_servers(self, config: HubConfig) -> None:
        while self._attached:
            await asyncio.sleep(config.ice.refresh_interval)
            self._signal(
                IceServers(ice_servers=config.welcome_ice_servers(self.peer_id, time.time()))
            )
            self.log.debug("sent fresh TURN credentials")

    # PeerSignals

    def send_offer(self, sdp: str) -> None:
        self._signal(ServerOffer(sdp=sdp))

    def send_answer(self, sdp: str) -> None:
        self._signal(ServerAnswer(sdp=sdp))

    def send_candidate(self, candidate: CandidateInit | None) -> None:
        if candidate is None:
            self._signal(Candidate(candidate=None))
            return
        ice = IceCandidate(
            candidate=candidate.candidate,
            sdpMid=candidate.sdp_mid,
            sdpMLineIndex=candidate.sdp_mline_index,
        )
        self._signal(Candidate(candidate=ice))

    def media_failed(self, reason: str) -> None:
        if not self._attached:
            self.log.debug("media failure after leaving ignored: %s", reason)
            return
        if self.session is not None:
            self.session.media_failed(self, reason)
        elif self.on_parked_end is not None:
            self.on_parked_end("failed")

    def end(self, code: ErrorCode, message: str, reason: LeaveReason) -> None:
        """The server ends this stay (Session.end), parked or not."""
        if self.session is not None:
            self.session.end(self, code, message, reason)
        elif self.on_parked_end is not None:
            self.log.info("ended by the server while away (%s): %s", code, message)
            self.on_parked_end(reason)

    def rebuild(self, reason: str, ice_servers: list[IceServer]) -> None:
        self._signal(
            Rebuild(
                reason=reason,
                ice_servers=[
                    IceServerInfo(urls=list(s.urls), username=s.username, credential=s.credential)
                    for s in ice_servers
                ],
            )
        )

    def layer_changed(self, track: str, layer: str, requested: str) -> None:
        self._signal(
            msgspec.convert({"track": track, "layer": layer, "requested": requested}, LayerChanged)
        )

    def event(self, event: RoomEvent) -> None:
        if isinstance(event, DataRefused):
            if self._attached and self.session is not None:  # not while away: said to nobody
                self.session.data_refused(event)
            return
        self._signal(_room_message(event))

    def publish_layers(self, track: str, layers: list[str]) -> None:
        self._signal(msgspec.convert({"track": track, "layers": layers}, PublishLayers))

    def _signal(self, msg: Msg) -> None:
        if not self._attached:
            self.log.debug("%s from the backend after leaving dropped", type(msg).__name__)
        elif self._held is not None:
            self._held.append(msg)
        else:
            self.send(msg)


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        backend: MediaBackend,
        config: HubConfig,
        roster: Roster,
        log: ContextLogger,
        stats: HubStats | None = None,
        desk: ResumeDesk[Membership] | None = None,
        going_away: Callable[[], GoingAway | None] = lambda: None,
    ) -> None:
        self._ws = ws
        self._backend = backend
        self._config = config
        self._roster = roster
        self._desk: ResumeDesk[Membership] = desk if desk is not None else ResumeDesk(0)
        self._going_away = going_away  # the hub's drain (Hub.drain), once it began
        self._resumable = True  # False once we close the socket for misbehaving
        self.log = log
        self.membership: Membership | None = None
        self._lock = asyncio.Lock()
        self._outbox: asyncio.Queue[Msg] = asyncio.Queue()
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished = asyncio.Event()
        self._stats = stats or HubStats()
        limits = config.limits
        self._limiter = FrameLimiter(
            rate=limits.message_rate,
            burst=limits.message_burst,
            byte_rate=limits.byte_rate,
            byte_burst=limits.byte_burst,
            flood_frames=limits.flood_frames,
            flood_seconds=limits.flood_seconds,
        )
        self._join_timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        """Serve the socket until it closes, then leave the room as "disconnected"."""
        writer = asyncio.create_task(self._write_loop())
        self._arm_join_timer()
        try:
            await self._read_loop()
        finally:
            self._closed = True
            self._disarm_join_timer()
            async with self._lock:
                if not self._park():
                    await self._leave("disconnected")
            writer.cancel()
            # Pending media-failure tasks find the membership gone and return at once.
            await asyncio.gather(writer, *self._tasks, return_exceptions=True)
            self._finished.set()

    async def wait_finished(self) -> None:
        """Until run() has left the room and closed the media peer."""
        await self._finished.wait()

    async def close(self, code: int = WSCloseCode.GOING_AWAY, message: bytes = b"") -> None:
        await self._ws.close(code=code, message=message)

    def send(self, msg: Msg) -> None:
        if self._closed:
            self.log.debug("%s not sent: socket closed", type(msg).__name__)
            return
        if self._outbox.qsize() >= MAX_OUTBOX:
            self.log.warning("client reads nothing: %d messages waiting; closing", MAX_OUTBOX)
            self._closed = True
            self._resumable = False
            self._spawn(self.close(WSCloseCode.POLICY_VIOLATION, b"client is not reading"))
            return
        self._outbox.put_nowait(msg)

    def media_failed(self, membership: Membership, reason: str) -> None:
        self._spawn(self._media_failed(membership, reason))

    def data_refused(self, refused: DataRefused) -> None:
        """A data channel message refused by the media plane: counted, and the client told."""
        if refused.limit is not None:
            self._stats.refused(refused.limit)
        self.log.debug("data message refused: %s", refused.message)
        self._send_error(self._known_code(refused.code), refused.message)

    async def _read_loop(self) -> None:
        while True:
            frame = await self._ws.receive()
            if frame.type is WSMsgType.TEXT or frame.type is WSMsgType.BINARY:
                await self._handle(cast(str | bytes, frame.data))
            elif frame.type is WSMsgType.ERROR:
                # aiohttp closes with 1009 by itself on a frame over 4x max_message_bytes.
                self.log.info("socket error: %s", self._ws.exception())
                return
            else:  # CLOSE, CLOSING, CLOSED
                return

    async def _write_loop(self) -> None:
        while True:
            msg = await self._outbox.get()
            try:
                await self._ws.send_str(encode(msg).decode())
            except (ConnectionError, RuntimeError) as exc:
                # The reader sees the close too and ends the session; nothing to tell anyone.
                self.log.debug("%s not sent: %s", type(msg).__name__, exc)
                self._closed = True
                return
            self._outbox.task_done()

    async def _handle(self, frame: str | bytes) -> None:
        if not self._admit(frame):
            return
        try:
            msg = decode_client(frame, max_bytes=self._config.max_message_bytes)
        except ProtocolError as exc:
            self.log.debug("rejected a frame: %s", exc)
            self._send_error(exc.code, exc.message)
            return
        async with self._lock:
            try:
                await self._dispatch(msg)
            except ProtocolError as exc:
                self._send_error(exc.code, exc.message)
            except NegotiationError as exc:
                self.log.info("%s refused by the media plane: %s", _tag(msg), exc.message)
                if (limit := MEDIA_LIMITS.get(exc.code)) is not None:
                    self._stats.refused(limit)
                self._send_error(self._known_code(exc.code), exc.message)
            except Exception:
                self.log.exception("internal error while handling %s", _tag(msg))
                self._send_error(
                    ErrorCode.INTERNAL_ERROR, f"internal server error while handling `{_tag(msg)}`"
                )

    def _admit(self, frame: str | bytes) -> bool:
        """Whether a frame is within the session's rates (signaling.ratelimit); one error per
        flood, not one per frame: answering each would feed the flood."""
        if self._closed:
            return False
        verdict = self._limiter.check(len(frame), asyncio.get_running_loop().time())
        if verdict is Verdict.ACCEPT:
            return True
        self._stats.rate_limited += 1
        limits, over = self._config.limits, self._limiter.over
        if verdict is Verdict.WARN:
            self._stats.refused(over)
            if over == "messages":
                rate = f"{limits.message_rate:g} messages per second"
                burst = limits.message_burst
            else:
                rate, burst = f"{limits.byte_rate:g} bytes per second", limits.byte_burst
            rate += f" (bursts of {burst})"
            self.log.info("rate limited: over %s", rate)
            self._send_error(
                ErrorCode.RATE_LIMITED,
                f"more than {rate}: messages are dropped until the rate falls",
            )
        elif verdict is Verdict.CUT:
            self._stats.refused("flood")
            self.log.warning(
                "still flooding after %d dropped frames: closing", self._limiter.dropped
            )
            self._closed = True
            self._resumable = False
            self._spawn(self.close(WSCloseCode.POLICY_VIOLATION, b"message rate limit"))
        return False

    def _arm_join_timer(self) -> None:
        """Close this socket unless it is in a room within join_timeout seconds."""
        self._disarm_join_timer()
        if self._config.limits.join_timeout and not self._closed:
            loop = asyncio.get_running_loop()
            timeout = self._config.limits.join_timeout
            self._join_timer = loop.call_later(timeout, self._join_timed_out)

    def _disarm_join_timer(self) -> None:
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None

    def _join_timed_out(self) -> None:
        self._join_timer = None
        if self.membership is not None or self._closed:
            return
        if self._lock.locked():  # a join may be in progress: look again later
            self._join_timer = asyncio.get_running_loop().call_later(1.0, self._join_timed_out)
            return
        self._stats.refused("join_timeout")
        timeout = self._config.limits.join_timeout
        self.log.info("in no room for %gs: closing", timeout)
        self._send_error(
            ErrorCode.JOIN_TIMEOUT, f"no `join` within {timeout:g}s of connecting or leaving"
        )
        self._spawn(self._close_after_sending(WSCloseCode.POLICY_VIOLATION, b"join timeout"))

    async def _close_after_sending(self, code: int, message: bytes) -> None:
        """Close once what is queued has been written (an error saying why, say)."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), 1.0)
        await self.close(code, message)

    async def _dispatch(self, msg: ClientMessage) -> None:
        match msg:
            case Ping(id=ping_id):
                self.send(Pong(id=ping_id))
            case Join():
                await self._join(msg)
            case LeaveMsg():
                self._joined("leave")
                await self._leave("left")
            case Offer(sdp=sdp):
                await self._joined("offer").offer(self._bounded_sdp(sdp, "offer"))
            case Answer(sdp=sdp):
                await self._joined("answer").answer(self._bounded_sdp(sdp, "answer"))
            case Candidate(candidate=candidate):
                await self._joined("candidate").candidate(_candidate_init(candidate))
            case SetLayer(track=track, layer=layer):
                await self._joined("set_layer").set_layer(track, layer)
            case DescribeTrack(track=track, source=source, muted=muted):
                await self._joined("track_info").describe_track(track, source, muted)
            case Mute(track=track, muted=muted):
                await self._joined("mute").mute(track, muted)
            case _:
                assert_never(msg)

    def _bounded_sdp(self, sdp: str, kind: str) -> str:
        """Refuse an SDP over the size or m-line limits before the media plane parses it."""
        limits = self._config.limits
        if len(sdp) > limits.sdp_chars:
            self._stats.refused("sdp_size")
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"the {kind} is {len(sdp)} characters, over the limit of {limits.sdp_chars}",
            )
        mlines = sdp.startswith("m=") + sdp.count("\nm=")
        if 0 < limits.mlines < mlines:
            self._stats.refused("mlines")
            raise ProtocolError(
                ErrorCode.TOO_LARGE,
                f"the {kind} has {mlines} m-lines, over the limit of {limits.mlines}",
            )
        return sdp

    def _joined(self, tag: str) -> MediaPeer:
        if self.membership is None or self.membership.media is None:
            raise ProtocolError(ErrorCode.NOT_JOINED, f"`{tag}` before `join`: join a room first")
        return self.membership.media

    async def _join(self, msg: Join) -> None:
        if (current := self.membership) is not None:
            raise ProtocolError(
                ErrorCode.ALREADY_JOINED,
                f"already in room {current.room!r} as {current.peer_id}; send `leave` first",
            )
        if (going_away := self._going_away()) is not None:
            # No new stays on a server that is shutting down: the client is told when to retry.
            self.log.info("join refused: the server is going away")
            self.send(going_away)
            self._spawn(self._close_after_sending(WSCloseCode.GOING_AWAY, b"server shutting down"))
            return
        if msg.resume is not None:
            await self._resume(msg, msg.resume)
            return
        admission = self._admission(msg)
        if admission is None:
            return
        self._replace_identity(msg.room, admission.identity)
        self._check_room_size(msg.room)
        peer_id = self._roster.new_peer_id()
        log = bind(self.log, room=msg.room, peer=peer_id)
        membership = Membership(
            self,
            msg.room,
            peer_id,
            admission.name,
            log,
            msg.role,
            identity=admission.identity,
            grants=admission.grants,
        )
        try:
            membership.media = await self._backend.join(
                msg.room, peer_id, membership, grants=admission.grants, data=msg.data
            )
        except BaseException:
            membership.detach()
            self._roster.release(peer_id)
            raise
        self.membership = membership
        self._disarm_join_timer()
        others = self._roster.add(membership)
        self.send(
            Welcome(
                peer_id=peer_id,
                room=msg.room,
                ice_servers=self._config.welcome_ice_servers(peer_id, time.time()),
                ice_mode=self._config.welcome_ice_mode(),
                participants=others,
                resume_token=self._desk.issue(membership),
                grants=_grant_info(admission),
                simulcast=self._backend.simulcast,
            )
        )
        membership.release()
        membership.refresh_ice_servers(self._config)
        log.info(
            "joined as %r (%s, identity %s); %d others in the room",
            admission.name,
            msg.role,
            admission.identity,
            len(others),
        )

    def _admission(self, msg: Join) -> Admission | None:
        """Who the join admits (signaling.auth); None when its token admits no one, in which case
        the client has been told why and the socket is closing."""
        try:
            return admit(self._config.auth_secret, msg.room, msg.token, msg.name)
        except TokenError as exc:
            self._stats.token_refusals[exc.code] += 1
            self.log.info("join to %r refused: %s", msg.room, exc.message)
            self._send_error(ErrorCode(exc.code), exc.message)
            self._spawn(self._close_after_sending(WSCloseCode.POLICY_VIOLATION, b"room token"))
            return None

    def _replace_identity(self, room: str, identity: str | None) -> None:
        """One session per identity per room, as LiveKit: a second join ends the first."""
        if identity is None:
            return
        old = self._roster.find(room, identity=identity)
        if isinstance(old, Membership):
            old.end(
                ErrorCode.REPLACED,
                f"{identity!r} joined room {room!r} again, from another session",
                "replaced",
            )

    def end(
        self, membership: Membership, code: ErrorCode, message: str, reason: LeaveReason
    ) -> None:
        """The server ends this stay (a second join of its identity, an operator): the others
        are told at once, the client is told why, then its media and its socket are closed."""
        if self.membership is not membership or membership.ended:
            return
        membership.ended = True
        self._stats.ended[code] += 1
        membership.log.info("ended by the server (%s): %s", code, message)
        membership.detach()
        self._roster.remove(membership, reason)
        self._send_error(code, message)
        self._closed = True  # nothing more is read or sent; the error above is still written
        self._spawn(self._close_ended(membership, reason))

    async def _close_ended(self, membership: Membership, reason: LeaveReason) -> None:
        async with self._lock:
            if self.membership is membership:
                await self._leave(reason)
        await self._close_after_sending(WSCloseCode.OK, reason.encode())

    def _check_room_size(self, room: str) -> None:
        limit = self._config.limits.participants
        if limit and self._roster.size(room) >= limit:
            self._stats.refused("room_full")
            raise ProtocolError(
                ErrorCode.ROOM_FULL, f"room {room!r} is full: {limit} participants at most"
            )

    async def _leave(self, reason: LeaveReason) -> None:
        """Take the current membership out of its room and close its media. Call under _lock."""
        membership, self.membership = self.membership, None
        if membership is None:
            return
        self._arm_join_timer()
        await _end_stay(membership, self._roster, self._desk, reason)

    # --- resume (signaling.resume) ------------------------------------------------------------

    def _park(self) -> bool:
        """The socket went without a `leave`: keep the membership for its client to claim back
        within the grace period. False when it cannot be kept (then it leaves). Under _lock."""
        membership = self.membership
        if membership is None or not self._resumable:
            return False
        roster, desk = self._roster, self._desk

        async def expire(reason: LeaveReason) -> None:
            membership.log.info("not resumed within %gs", desk.grace)
            await _end_stay(membership, roster, desk, reason)

        if not desk.park(membership, expire):
            return False
        self.membership = None
        membership.session = None
        membership.lost_at = time.monotonic()
        membership.on_parked_end = lambda reason: desk.expire_now(membership, reason)
        membership.log.info("socket gone: kept for %gs for the client to resume", desk.grace)
        return True

    async def _resume(self, msg: Join, token: str) -> None:
        """A `join` with `resume`: take the membership the token names back onto this socket."""
        stats, desk = self._stats, self._desk
        stats.reconnects += 1
        membership = desk.peek(token)
        if membership is not None and membership.room != msg.room:
            membership = None
        old = membership.session if membership is not None else None
        if old is not None and old is not self:
            # The client came back before we noticed its old socket died: take the membership
            # from that session once the frame it may be handling is done, and close it.
            async with old._lock:
                if old.membership is membership:
                    old.membership = None
                    old._closed = True
                    old._spawn(old.close(CLOSE_RESUMED_ELSEWHERE, b"resumed on another socket"))
        if membership is None or desk.claim(token) is not membership:
            stats.failed_resumes += 1
            raise ProtocolError(
                ErrorCode.RESUME_FAILED,
                f"cannot resume in room {msg.room!r}: the token is unknown, used, or expired "
                f"(sessions are kept {desk.grace:g}s); join without `resume` for a new session",
            )
        membership.session = self
        membership.on_parked_end = None
        self.membership = membership
        self._disarm_join_timer()
        self.send(
            Welcome(
                peer_id=membership.peer_id,
                room=membership.room,
                ice_servers=self._config.welcome_ice_servers(membership.peer_id, time.time()),
                ice_mode=self._config.welcome_ice_mode(),
                participants=self._roster.others(membership),
                resume_token=desk.issue(membership),
                grants=_membership_grants(membership),
                resumed=True,
            )
        )
        stats.resumes += 1
        # The one line per recovery, with how long the client was away (from when we noticed).
        lost_at, membership.lost_at = membership.lost_at, None
        if lost_at is None:
            membership.log.info("resumed: moved from a socket still open")
        else:
            membership.log.info("resumed after %.2fs away", time.monotonic() - lost_at)
        if membership.media is not None:
            await membership.media.resumed()

    async def _media_failed(self, membership: Membership, reason: str) -> None:
        async with self._lock:
            if self.membership is not membership:
                return  # left or disconnected meanwhile
            membership.log.warning("media failed: %s", reason)
            self._send_error(
                ErrorCode.MEDIA_FAILED,
                f"the media connection failed ({reason}); you left the room, join again to retry",
            )
            await self._leave("failed")

    def _send_error(self, code: ErrorCode, message: str) -> None:
        self.send(ErrorMsg(code=code, message=message))

    def _known_code(self, code: str) -> ErrorCode:
        try:
            return ErrorCode(code)
        except ValueError:
            self.log.warning("backend raised an undocumented error code %r", code)
            return ErrorCode.INTERNAL_ERROR

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _end_stay(
    membership: Membership, roster: Roster, desk: ResumeDesk[Membership], reason: LeaveReason
) -> None:
    """Out of the room (the others are told), media closed, not resumable any more."""
    membership.detach()
    desk.revoke(membership)
    desk.unpark(membership)
    roster.remove(membership, reason)
    try:
        if membership.media is not None:
            await membership.media.close()
    except Exception:
        membership.log.exception("closing the media peer failed")
    membership.log.info("left: %s", reason)


def _tag(msg: Msg) -> str:
    tag = msg.__struct_config__.tag
    return tag if isinstance(tag, str) else type(msg).__name__


def _candidate_init(candidate: IceCandidate | None) -> CandidateInit | None:
    if candidate is None or candidate.candidate == "":
        return None  # browsers signal end-of-candidates with an empty candidate string
    line = candidate.candidate
    # CandidateInit is the browser form; aiortc clients send the line without its prefix.
    if not line.startswith("candidate:"):
        line = "candidate:" + line
    return CandidateInit(
        candidate=line, sdp_mid=candidate.sdpMid, sdp_mline_index=candidate.sdpMLineIndex
    )


def _room_message(event: RoomEvent) -> Msg:
    match event:
        case PublishedTrack():
            return msgspec.convert(
                {
                    "peer_id": event.peer_id,
                    "track": event.track,
                    "kind": event.kind,
                    "source": event.source,
                    "muted": event.muted,
                    "layers": list(event.layers),
                },
                TrackState,
            )
        case TrackEnded(peer_id=peer_id, track=track):
            return TrackUnpublished(peer_id=peer_id, track=track)
        case SpeakersChanged(speakers=speakers):
            return ActiveSpeakers(speakers=[SpeakerInfo(peer_id=p, level=v) for p, v in speakers])
        case DataRefused():
            raise AssertionError("a refusal is an error, not a room message")
        case _:
            assert_never(event)


def _membership_grants(membership: Membership) -> GrantInfo | None:
    if membership.identity is None:
        return None
    grants = membership.grants
    return GrantInfo(publish=grants.publish, subscribe=grants.subscribe)


def _grant_info(admission: Admission) -> GrantInfo | None:
    if admission.identity is None:  # open rooms: everyone may do everything
        return None
    grants = admission.grants
    return GrantInfo(publish=grants.publish, subscribe=grants.subscribe, data=grants.data)
