"""The room page on a server with room tokens (AUTH_SECRET), in real Chromium under the page's
Content-Security-Policy: an invite link with `?token=` joins under the token's name and the token
leaves the address bar; a watch-only token receives and publishes nothing; a refused or replaced
session ends `failed` with the server's reason, and does not rejoin by itself."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from signaling.auth import mint
from signaling.backend import Grants
from tests.browser.roompage import RoomPage, assert_no_console_errors, frames_decoded
from tests.conftest import LOOPBACK, serving
from tests.util import eventually, eventually_async, recv

SECRET = "browser-test-secret-" + "b" * 40
Invite = Callable[..., Awaitable[RoomPage]]


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:  # the page's server, with room tokens
    async with serving(auth_secret=SECRET) as running:
        yield running


@pytest.fixture
async def invite(browser: Browser, server: RunningServer) -> AsyncIterator[Invite]:
    """Open an invite link, `/?room=R&token=T`, in a fresh context."""
    pages: list[RoomPage] = []

    async def open_(room: str, token: str, label: str) -> RoomPage:
        context = await browser.new_context(viewport={"width": 1280, "height": 720})
        page = RoomPage(await context.new_page(), label)
        pages.append(page)
        await page.goto(f"{server.page_url}?{urlencode({'room': room, 'token': token})}")
        return page

    yield open_
    for page in pages:
        await page.page.context.close()


async def state(page: RoomPage) -> dict[str, Any]:
    return await page.media()


@contextlib.asynccontextmanager
async def publishing_bot(server: RunningServer, room: str) -> AsyncIterator[Client]:
    """A Python client with a token of its own, publishing video in the room."""
    token = mint(SECRET, room=room, identity="bot")
    bot = Client(server.url, room, token=token, ice_addresses=LOOPBACK)
    await bot.connect()
    try:
        await bot.publish(TestPatternTrack(320, 240, fps=15))
        yield bot
    finally:
        await bot.close()


async def decodes(page: RoomPage, bot: Client) -> None:
    async def check() -> str:
        s = await state(page)
        return "" if frames_decoded(s, bot.peer_id or "") > 3 else f"page: {s['tiles']}"

    await eventually_async(check, timeout=20)


async def test_an_invite_link_joins_under_the_tokens_name(
    server: RunningServer, invite: Invite
) -> None:
    async with publishing_bot(server, "invited") as bot:
        token = mint(SECRET, room="invited", identity="ann@example.com", name="Ann")
        page = await invite("invited", token, "ann")
        await decodes(page, bot)
        assert "token" not in page.page.url  # out of the address bar
        assert await page.evaluate("() => sessionStorage.getItem('aiosfu.token.invited')") == token
        await eventually(lambda: "" if list(bot.participants.values()) == ["Ann"] else "-")
        remote = await bot.next_track()  # and the page publishes its camera (and microphone)
        while remote.kind != "video":
            remote = await bot.next_track()
        assert (await recv(remote.track)).width > 0
        assert_no_console_errors(page)  # none: no CSP violation either


async def test_a_watch_only_token_receives_and_publishes_nothing(
    server: RunningServer, invite: Invite
) -> None:
    async with publishing_bot(server, "watch") as bot:
        token = mint(SECRET, room="watch", identity="lobby", grants=Grants(publish=False))
        page = await invite("watch", token, "lobby")
        await decodes(page, bot)
        [viewer] = [p for p in server.backend.participants() if p.id != bot.peer_id]
        assert viewer.publications == {}
        assert await page.evaluate("() => globalThis.sfuClient.mayPublish") is False
        assert bot.remote_tracks == {}
        assert_no_console_errors(page)


async def test_a_refused_token_and_a_replaced_session_end_failed(
    server: RunningServer, invite: Invite
) -> None:
    expired = mint(SECRET, room="end", identity="late", ttl=60, now=1_000_000_000)
    late = await invite("end", expired, "late")

    async def failed(page: RoomPage, words: str) -> str:
        s = await state(page)
        text = await page.status_text()
        return "" if s["status"] == "failed" and words in text else f"{s['status']}: {text}"

    await eventually_async(lambda: failed(late, "expired"), timeout=10)

    token = mint(SECRET, room="end", identity="ann", name="Ann")
    first = await invite("end", token, "first")
    await eventually_async(lambda: _connected(first), timeout=15)
    second = await invite("end", token, "second")
    await eventually_async(lambda: failed(first, "again"), timeout=10)
    await eventually_async(lambda: _connected(second), timeout=15)
    assert len(server.backend.participants()) == 1
    for page in (first, late):  # and neither came back on its own
        assert (await state(page))["status"] == "failed"


async def _connected(page: RoomPage) -> str:
    s = await state(page)
    return "" if s["status"] == "connected" else f"status {s['status']}"
