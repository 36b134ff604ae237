"""The hub: serves protocol v1 on GET /ws and a liveness probe on GET /healthz.

One Session per WebSocket (signaling.session), one Roster of rooms for the whole hub, one
MediaBackend that the entry point hands in. Each session's frames are rate limited
(signaling.ratelimit), and only pages of allowed origins may connect (signaling.origin). No
authentication yet: `token` in `join` is accepted and ignored.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from aiohttp import WSCloseCode, web

from signaling.backend import MediaBackend
from signaling.config import HubConfig
from signaling.log import bind
from signaling.metrics import HubStats
from signaling.origin import OriginPolicy
from signaling.roster import Roster
from signaling.session import Session

logger = logging.getLogger(__name__)


class Hub:
    def __init__(self, backend: MediaBackend, config: HubConfig) -> None:
        self.backend = backend
        self.config = config
        self.roster = Roster()
        self.stats = HubStats()  # read by /metrics (signaling.metrics)
        self._sessions: set[Session] = set()
        self._connections = itertools.count(1)  # tells apart sockets from one address in logs
        self.origins = OriginPolicy(config.allowed_origins)

    def add_routes(self, app: web.Application) -> None:
        """Mount /ws and /healthz on an app that may serve other things (static files)."""
        app.router.add_get("/ws", self.handle_ws)
        app.router.add_get("/healthz", self.handle_healthz)
        app.on_shutdown.append(self._on_shutdown)

    async def handle_ws(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not self.origins.allows(origin, request.host):
            logger.info("refused a socket from origin %s (host %s)", origin, request.host)
            return web.Response(
                status=403, text=f"origin {origin} may not connect: see ALLOWED_ORIGINS\n"
            )
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
            log=bind(logger, conn=next(self._connections), remote=request.remote),
            stats=self.stats,
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

    async def close(self, grace: float = 5.0) -> None:
        """Close every socket (1001 going away) and wait for the sessions to leave their rooms,
        so that the entry point can close the backend after this without pulling media out from
        under a session that is still closing it."""
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

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()


def create_app(hub: Hub) -> web.Application:
    app = web.Application()
    hub.add_routes(app)
    return app
