"""The room page recovers by itself, in real Chromium: a lost WebSocket is resumed (same peer_id,
media never stops, the others see nothing)."""

from __future__ import annotations

import asyncio

from aiohttp import WSCloseCode

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import (
    RoomPage,
    assert_no_console_errors,
    frames_decoded,
    media_flows,
    peer_ids,
)
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

# Counts, in the page, every `track` event of every RTCPeerConnection and the status changes.
COUNT_EVENTS = """
(() => {
  const Native = globalThis.RTCPeerConnection;
  globalThis.trackEvents = 0;
  globalThis.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("track", () => { globalThis.trackEvents += 1; });
    }
  };
})();
"""


async def page_value(page: RoomPage, expression: str) -> object:
    return await page.page.evaluate(expression)


async def test_a_page_whose_socket_the_server_closes_resumes_its_session(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    bot = await make_client("resume", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15))
    page = await open_page("resume", "Alice", init_script=COUNT_EVENTS)
    (page_id,) = await peer_ids(page)
    bot_id = bot.peer_id
    assert bot_id is not None
    await media_flows(page, {bot_id: "bot"}, audio=set())

    def bot_gets_video() -> str:
        got = [r for r in bot.remote_tracks.values() if r.peer_id == page_id and r.kind == "video"]
        return "" if got else "no video from the page yet"

    await eventually(bot_gets_video, timeout=15)
    (video,) = [r for r in bot.remote_tracks.values() if r.peer_id == page_id and r.kind == "video"]
    await recv(video.track, 10)
    tracks_before = await page_value(page, "trackEvents")
    seen_by_bot = dict(bot.participants)
    before = frames_decoded(await page.media(), bot_id)

    (session,) = [
        s for s in server.hub.sessions() if s.membership and s.membership.peer_id == page_id
    ]
    done = asyncio.Event()

    async def bot_keeps_receiving() -> None:
        while not done.is_set():
            await recv(video.track, 2.0)  # the page's video never stops on the way

    watching = asyncio.ensure_future(bot_keeps_receiving())
    await session.close(WSCloseCode.GOING_AWAY)

    async def resumed() -> str:
        state = await page.media()
        resumes = await page_value(page, "sfuClient.resumes")
        if state["peerId"] != page_id or resumes != 1 or state["status"] != "connected":
            return f"peer {state['peerId']}, status {state['status']}, resumes {resumes}"
        return ""

    await eventually_async(resumed, timeout=15)

    async def growing() -> str:
        frames = frames_decoded(await page.media(), bot_id)
        return "" if frames > before + 15 else f"frames decoded {before} -> {frames}"

    await eventually_async(growing, timeout=10)
    done.set()
    await asyncio.wait_for(watching, 5)
    assert await page_value(page, "trackEvents") == tracks_before  # the same peer connection
    assert bot.participants == seen_by_bot
    assert await page.status_text() == "Connected"
    assert_no_console_errors(page)
