"""Real headless Chromium (Debian's) driven by Playwright, against an in-process server.

Launched exactly as ../shared/testing.md says: the host-resolver rule keeps Chromium from looking
anything up, fake devices stand in for the camera (a moving test pattern) and the microphone
(a beep), loopback ICE is allowed (the tests may run in a namespace that has only `lo`).
`make test` installs Debian's chromium when it is missing; without it these tests are skipped,
except under CI, where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from sfu.server import RunningServer
from tests.browser.roompage import RoomPage

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--allow-loopback-in-peer-connection",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

OpenPage = Callable[..., Awaitable[RoomPage]]


CHROMIUM_INSTALLED = CHROMIUM.exists()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM_INSTALLED:
        message = f"{CHROMIUM} is missing: `make test` installs Debian's chromium (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def open_page(browser: Browser, server: RunningServer) -> AsyncIterator[OpenPage]:
    """Open the room page in a fresh context (its own profile, like another person)."""
    pages: list[RoomPage] = []

    async def open_(
        room: str,
        name: str,
        *,
        cam: bool = True,
        mic: bool = True,
        init_script: str | None = None,
    ) -> RoomPage:
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        page = RoomPage(await context.new_page(), name)
        if init_script is not None:
            await page.page.add_init_script(init_script)
        pages.append(page)
        await page.open(server.page_url, room, cam=cam, mic=mic)
        return page

    yield open_
    for page in pages:
        await page.page.context.close()
