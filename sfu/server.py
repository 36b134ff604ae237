"""The entry point's wiring: the hub (signaling/) in front of the media plane (sfu/)."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from dataclasses import dataclass, field

from aiohttp import web

from signaling.config import HubConfig
from signaling.hosts import LOOPBACK_HOSTS
from signaling.hub import Hub
from signaling.ice import IceConfig
from signaling.limits import Limits

from .backend import SfuBackend
from .config import DEFAULT_MAX_BITRATE, SfuConfig
from .metrics import add_routes as add_metrics_routes
from .web import add_routes as add_page_routes

logger = logging.getLogger(__name__)

BACKEND = web.AppKey("backend", SfuBackend)
HUB = web.AppKey("hub", Hub)


@dataclass(slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    ice_addresses: list[str] | None = None
    ice_port_range: tuple[int, int] | None = None
    ice_announced: dict[str, str] = field(default_factory=dict)
    ice: IceConfig = field(default_factory=IceConfig)
    allowed_origins: list[str] = field(default_factory=list)
    max_bitrate: int = DEFAULT_MAX_BITRATE
    limits: Limits = field(default_factory=Limits)
    # Host names /ws answers to; empty: the loopback names when `host` is a loopback address
    # (a page on a rebound name reaches nothing on a laptop), else any.
    allowed_hosts: list[str] = field(default_factory=list)
    trusted_proxies: list[str] = field(default_factory=list)
    # Room tokens' secret (signaling.auth); None: open rooms.
    auth_secret: str | None = field(default=None, repr=False)
    # PEM certificate chain and private key: serve https:// and wss:// directly (TLS_CERT,
    # TLS_KEY), for a LAN where a phone's browser gives its camera only to a secure page.
    tls_cert: str | None = None
    tls_key: str | None = None
    resume_grace: float = 30.0
    # SIGTERM: seconds the told clients have, and the retry hint they get (HubConfig).
    drain_grace: float = 5.0
    drain_retry_after: float = 2.0

    def hosts(self) -> tuple[str, ...]:
        if self.allowed_hosts:
            return tuple(self.allowed_hosts)
        return LOOPBACK_HOSTS if self.host in LOOPBACK_HOSTS else ()


def build_app(config: ServerConfig) -> web.Application:
    backend = SfuBackend(
        SfuConfig(
            ice_addresses=config.ice_addresses,
            ice_port_range=config.ice_port_range,
            ice_announced=config.ice_announced,
            ice=config.ice,
            max_bitrate=config.max_bitrate,
            limits=config.limits,
        )
    )
    hub = Hub(
        backend,
        HubConfig(
            ice=config.ice,
            allowed_origins=tuple(config.allowed_origins),
            limits=config.limits,
            allowed_hosts=config.hosts(),
            trusted_proxies=tuple(config.trusted_proxies),
            auth_secret=config.auth_secret,
            resume_grace=config.resume_grace,
            drain_grace=config.drain_grace,
            drain_retry_after=config.drain_retry_after,
        ),
    )
    app = web.Application()
    hub.add_routes(app)
    add_page_routes(app)
    add_metrics_routes(app, backend, hub)
    app[BACKEND] = backend
    app[HUB] = hub

    async def close_media(_: web.Application) -> None:
        await backend.close()

    app.on_shutdown.append(close_media)
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for this certificate chain and key; raises OSError or ssl.SSLError."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


class RunningServer:
    """A server on an event loop that is already running (tests, benchmarks, embedding)."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._tls = (
            tls_context(config.tls_cert, config.tls_key)
            if config.tls_cert is not None and config.tls_key is not None
            else None
        )
        self.app = build_app(config)
        self._runner = web.AppRunner(self.app, handle_signals=False)
        self.port = config.port

    @property
    def backend(self) -> SfuBackend:
        return self.app[BACKEND]

    @property
    def hub(self) -> Hub:
        return self.app[HUB]

    @property
    def url(self) -> str:
        return f"{'wss' if self._tls else 'ws'}://{self.config.host}:{self.port}/ws"

    @property
    def page_url(self) -> str:
        """The room page's URL; a wildcard listen address is shown as loopback."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
            self.config.host, self.config.host
        )
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self._tls else 'http'}://{host}:{self.port}/"

    async def start(self) -> RunningServer:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=self._tls)
        await site.start()
        if self._runner.addresses:  # port 0: the one the OS picked
            self.port = self._runner.addresses[0][1]
        logger.info(
            "serving on %s://%s:%d (WebSocket %s)",
            "https" if self._tls else "http",
            self.config.host,
            self.port,
            self.url,
        )
        logger.info("room page: open %s in two browser tabs to start a call", self.page_url)
        return self

    async def drain(self) -> None:
        """Tell every client the server is going away, then close (Hub.drain)."""
        await self.hub.drain()

    async def stop(self) -> None:
        await self._runner.cleanup()


async def serve_forever(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then drain (clients told, `drain_grace` seconds for them
    to go) and close every session and peer connection. A second signal cuts the drain short."""
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signalled.set)
    server = await RunningServer(config).start()
    try:
        await signalled.wait()
        signalled.clear()
        logger.info("shutting down: draining for up to %gs", config.drain_grace)
        drain = asyncio.ensure_future(server.drain())
        again = asyncio.ensure_future(signalled.wait())
        await asyncio.wait({drain, again}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            logger.info("signalled again: closing now")
        for task in (drain, again):
            task.cancel()
        await asyncio.gather(drain, again, return_exceptions=True)
    finally:
        await server.stop()
        logger.info("stopped")
