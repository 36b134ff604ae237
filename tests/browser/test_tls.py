"""Why TLS_CERT/TLS_KEY exist, in real Chromium: a page on a LAN name over http:// is not a
secure context (no camera); over https:// from the server itself (a self-signed certificate,
accepted as a person would accept it) it is, and its camera reaches a Python client over wss://."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from sfu.client import Client
from sfu.server import RunningServer, ServerConfig
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require
from tests.browser.roompage import RoomPage
from tests.conftest import LOOPBACK
from tests.sfu.test_tls import make_certificate
from tests.util import eventually, eventually_async, recv

# A LAN name for 127.0.0.1, known to this browser only: not `localhost`, which browsers treat as
# secure over plain http.
LAN_NAME = "aiosfu.test"
RULES = f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1 , MAP * ~NOTFOUND , EXCLUDE localhost"


@pytest.fixture
async def lan_browser() -> AsyncIterator[Browser]:
    require(CHROMIUM, "chromium")
    args = [RULES if a.startswith("--host-resolver-rules=") else a for a in CHROMIUM_ARGS]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        try:
            yield browser
        finally:
            await browser.close()


async def lan_server(tmp_path: Path | None) -> RunningServer:
    tls = make_certificate(tmp_path) if tmp_path is not None else None
    config = ServerConfig(
        port=0,
        ice_addresses=LOOPBACK,
        allowed_hosts=[LAN_NAME, "127.0.0.1"],
        tls_cert=str(tls[0]) if tls else None,
        tls_key=str(tls[1]) if tls else None,
    )
    return await RunningServer(config).start()


async def test_a_lan_page_gets_its_camera_only_over_tls(
    lan_browser: Browser, tmp_path: Path
) -> None:
    plain = await lan_server(None)
    try:
        page = await (await lan_browser.new_context()).new_page()
        await page.goto(f"http://{LAN_NAME}:{plain.port}/")
        assert await page.evaluate("window.isSecureContext") is False
        assert await page.evaluate("navigator.mediaDevices === undefined") is True
    finally:
        await plain.stop()

    server = await lan_server(tmp_path)
    bot = Client(
        server.url,
        "lan",
        name="bot",
        ice_addresses=LOOPBACK,
        ssl_context=ssl.create_default_context(cafile=str(tmp_path / "cert.pem")),
    )
    try:
        await bot.connect()
        context = await lan_browser.new_context(ignore_https_errors=True)
        phone = RoomPage(await context.new_page(), "Phone")
        await phone.open(f"https://{LAN_NAME}:{server.port}/", "lan", mic=False)
        assert await phone.page.evaluate("window.isSecureContext") is True

        async def joined() -> str:
            state = await phone.media()
            return "" if state["peerId"] else f"not joined: {await phone.status_text()}"

        await eventually_async(joined, timeout=10)

        def camera_arrived() -> str:
            return "" if bot.remote_tracks else "no track from the phone yet"

        await eventually(camera_arrived, timeout=15)
        [camera] = bot.remote_tracks.values()
        frame = await recv(camera.track, 15)
        assert frame.width > 0
        assert phone.console_errors == []
    finally:
        await bot.close()
        await server.stop()
