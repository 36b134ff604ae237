"""Real headless browsers against an in-process server: Chromium (Debian's) driven by Playwright,
Firefox ESR (Debian's) driven over WebDriver BiDi (tests/browser/firefox.py).

Launched exactly as ../shared/testing.md says: the host-resolver rule keeps Chromium from looking
anything up, fake devices stand in for the camera (a moving test pattern) and the microphone
(a beep), loopback ICE is allowed (the tests may run in a namespace that has only `lo`); Firefox
gets the profile prefs that do the same. `make test` installs Debian's chromium and firefox-esr
when they are missing; without them these tests are skipped, except under CI, where that is a
failure. Firefox starts once per test module (a BiDi session per test).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from loadtest.chromium import CHROMIUM as CHROMIUM
from loadtest.chromium import CHROMIUM_ARGS as CHROMIUM_ARGS
from sfu.server import RunningServer
from tests.browser.firefox import FIREFOX, BidiSession, FirefoxPage, FirefoxProcess
from tests.browser.roompage import RoomPage

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

OpenPage = Callable[..., Awaitable[RoomPage]]
OpenFirefoxPage = Callable[..., Awaitable[FirefoxPage]]


def require(browser: Path, package: str) -> None:
    """Skip the test when the browser is missing; under CI, fail it."""
    if browser.exists():
        return
    message = f"{browser} is missing: `make test` installs Debian's {package} (as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require(CHROMIUM, "chromium")
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


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirefoxProcess]:
    require(FIREFOX, "firefox-esr")
    process = FirefoxProcess(tmp_path_factory.mktemp("firefox"))
    yield process
    process.close()


@pytest.fixture
async def open_firefox_page(
    firefox: FirefoxProcess, server: RunningServer
) -> AsyncIterator[OpenFirefoxPage]:
    """Open the room page in a new Firefox tab, in this test's BiDi session."""
    session = await BidiSession.start(firefox.url)
    pages: list[FirefoxPage] = []

    async def open_(room: str, name: str, *, cam: bool = True, mic: bool = True) -> FirefoxPage:
        page = await FirefoxPage.create(session, name)
        pages.append(page)
        await page.open(server.page_url, room, cam=cam, mic=mic)
        return page

    yield open_
    for page in pages:
        await page.close()
    await session.close()
