"""The hub: serves protocol v1 on GET /ws and a liveness probe on GET /healthz.

One Session per WebSocket (signaling.session), one Roster of rooms for the whole hub, one
MediaBackend that the entry point hands in, one ResumeDesk where participants whose socket went
wait for their client to resume them. Each session's frames are rate limited
(signaling.ratelimit); only pages of allowed origins (signaling.origin), on allowed host names
(signaling.hosts), may connect, and a client address may hold only so many sockets at once
(signaling.clientip). With AUTH_SECRET, a join needs a room token (signaling.auth), and the
admin HTTP API (signaling.admin) is served beside /ws.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter

from aiohttp import WSCloseCode, web

from signaling.admin import AdminApi
from signaling.backend import MediaBackend
from signaling.clientip import ClientAddress
from signaling.config import HubConfig
from signaling.hosts import HostPolicy
from signaling.log import bind
from signaling.metrics import HubStats
from signaling.origin import OriginPolicy
from signaling.protocol import GoingAway
from signaling.resume import ResumeDesk
from signaling.roster import Roster
from signaling.session import Membership, Session

logger = logging.getLogger(__name__)


class Hub:
    def __init__(self, backend: MediaBackend, config: HubConfig) -> None:
        self.backend = backend
        self.config = config
        self.roster = Roster()
        self.desk: ResumeDesk[Membership] = ResumeDesk(config.resume_grace)
        self.stats = HubStats()  # read by /metrics (signaling.metrics)
        self._sessions: set[Session] = set()
        self._connections = itertools.count(1)  # tells apart sockets from one address in logs
        self.origins = OriginPolicy(config.allowed_origins)
        self.hosts = HostPolicy(config.allowed_hosts)
        self.addresses = ClientAddress(config.trusted_proxies)
        self._per_address: Counter[str] = Counter()  # open sockets by client address
        # Set by drain(): what every client is told, and a `join` from then on is answered.
        self.going_away: GoingAway | None = None

    def add_routes(self, app: web.Application) -> None:
        """Mount /ws and /healthz on an app that may serve other things (static files)."""
        app.router.add_get("/ws", self.handle_ws)
        app.router.add_get("/healthz", self.handle_healthz)
        AdminApi(self).add_routes(app)
        app.on_shutdown.append(self._on_shutdown)

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        address = self.addresses.of(request.remote, request.headers.getall("X-Forwarded-For", []))
        refused = self._refuse_handshake(request, address)
        if refused is not None:
            return refused
        self._per_address[address] += 1
        try:
            return await self._serve(request, address)
        finally:
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]

    def _refuse_handshake(self, request: web.Request, address: str) -> web.Response | None:
        """The HTTP answer to a socket that may not open, with its reason; None if it may."""
        origin, host = request.headers.get("Origin"), request.host
        if not self.hosts.allows(host):
            status, limit, reason = (
                403,
                "host",
                f"host {host} is not served here: see ALLOWED_HOSTS",
            )
        elif not self.origins.allows(origin, host):
            status, limit = 403, "origin"
            reason = f"origin {origin} may not connect: see ALLOWED_ORIGINS"
        elif 0 < (most := self.config.limits.connections_per_ip) <= self._per_address[address]:
            status, limit = 429, "connections_per_ip"
            reason = f"too many connections from {address} (at most {most})"
        else:
            return None
        self.stats.refused(limit)
        # One address over its limit may knock thousands of times: the metric counts them all.
        log = logger.debug if limit == "connections_per_ip" else logger.info
        log("refused a socket from %s (origin %s, host %s): %s", address, origin, host, reason)
        return web.Response(status=status, text=reason + "\n")

    async def _serve(self, request: web.Request, address: str) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.config.heartbeat or None,
            # 4x our own limit: a frame up to there is read and refused with `too_large`, keeping
            # the session; only a larger one makes aiohttp close the socket with 1009 unread.
            max_msg_size=4 * self.config.max_message_bytes,
        )
        await ws.prepare(request)
        session = Session(
            ws,
            backend=self.backend,
            config=self.config,
            roster=self.roster,
            log=bind(logger, conn=next(self._connections), remote=address),
            stats=self.stats,
            desk=self.desk,
            going_away=lambda: self.going_away,
        )
        self._sessions.add(session)
        session.log.debug("connected")
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            session.log.debug("disconnected")
        return ws

    async def handle_healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def session_count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        return list(self._sessions)

    async def close(self, grace: float = 5.0) -> None:
        """Close every socket (1001 going away) and wait for the sessions to leave their rooms,
        so that the entry point can close the backend after this without pulling media out from
        under a session that is still closing it."""
        self.desk.closing = True  # sockets closed now leave at once
        sessions = list(self._sessions)
        await asyncio.gather(
            *(s.close(WSCloseCode.GOING_AWAY, b"server shutdown") for s in sessions),
            return_exceptions=True,
        )
        finished = asyncio.gather(*(s.wait_finished() for s in sessions))
        try:
            await asyncio.wait_for(finished, grace)
        except TimeoutError:
            logger.warning("%d sessions still closing after %.1fs", len(self._sessions), grace)
        await self.desk.close()  # participants waiting to be resumed leave too

    async def drain(self, reason: str = "the server is shutting down") -> None:
        """Going away (SIGTERM): every client is told (`going_away`, with the retry hint), joins
        are refused, and the sessions have `drain_grace` seconds to go by themselves, media
        flowing, before close() closes the rest. Like LiveKit's drain and Janus's shutdown,
        shortened: a restart should not keep a room waiting."""
        config = self.config
        self.going_away = GoingAway(reason=reason, retry_after=config.drain_retry_after)
        self.desk.closing = True  # a socket that goes from now on leaves at once
        sessions = list(self._sessions)
        for session in sessions:
            session.send(self.going_away)
        logger.info(
            "going away (%s): %d sessions told to come back in %gs; closing them in %gs",
            reason,
            len(sessions),
            config.drain_retry_after,
            config.drain_grace,
        )
        finished = asyncio.gather(*(s.wait_finished() for s in sessions))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(finished, config.drain_grace)
        await self.close()

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()


def create_app(hub: Hub) -> web.Application:
    app = web.Application()
    hub.add_routes(app)
    return app
