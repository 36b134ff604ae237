"""The room page recovers by itself, in real Chromium: a lost WebSocket is resumed (same peer_id,
media never stops, the others see nothing); a server gone for good ends `failed` once the retry
budget is spent, with nothing left running."""

from __future__ import annotations

import asyncio
import itertools

from aiohttp import WSCloseCode
from playwright.async_api import Browser

from sfu.media import TestPatternTrack
from sfu.server import RunningServer, ServerConfig
from tests.browser.conftest import OpenPage
from tests.browser.roompage import (
    RoomPage,
    assert_no_console_errors,
    frames_decoded,
    media_flows,
    peer_ids,
)
from tests.conftest import LOOPBACK, MakeClient
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
    assert isinstance(await page_value(page, "sfuClient.lastRecoverySeconds"), int | float)
    assert_no_console_errors(page)


# A second client in the page, on the page's own library, with a small retry budget.
GONE_PROBE = """
async (url) => {
  const probe = new sfuClient.constructor({url, room: "gone", name: "probe", reconnectAttempts: 3,
                                          iceServers: []});
  globalThis.probe = probe;
  globalThis.probeStatuses = [];
  probe.on("status", ({status}) => probeStatuses.push(status));
  await probe.join();
}
"""

PROBE_STATE = """
() => ({
  status: probe.status,
  reason: probe.statusReason,
  statuses: probeStatuses,
  retryTimer: probe._retryTimer ?? null,
  resyncTimer: probe._resyncTimer ?? null,
  socket: probe._channel !== null,
  pc: probe.pc !== null,
})
"""


async def test_a_page_whose_server_is_gone_for_good_ends_failed_with_nothing_left(
    browser: Browser,
) -> None:
    server = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK)).start()
    context = await browser.new_context()
    try:
        page = RoomPage(await context.new_page(), "Alice")
        await page.open(server.page_url, "gone")
        await peer_ids(page)
        await page.page.evaluate(GONE_PROBE, server.url)
        await server.stop()

        async def failed() -> str:
            state = await page.page.evaluate(PROBE_STATE)
            return "" if state["status"] == "failed" else f"probe: {state}"

        await eventually_async(failed, timeout=30)
        state = await page.page.evaluate(PROBE_STATE)
        # (each attempt's `status` event says why the previous one failed: one per attempt)
        statuses = [status for status, _ in itertools.groupby(state["statuses"])]
        assert statuses == ["connecting", "connected", "reconnecting", "failed"], state
        assert "gave up after 3 attempts" in state["reason"], state
        # No timer, socket or peer connection left behind.
        assert (state["retryTimer"], state["resyncTimer"], state["socket"], state["pc"]) == (
            None,
            None,
            False,
            False,
        ), state
    finally:
        await context.close()
        await server.stop()
