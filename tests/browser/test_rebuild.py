"""A transparent rebuild in real Chromium: the server's side of a connection is closed the way
aioice closes it when a consent check expires (in place is then impossible), for the page and
then for a Python client in the same room. Each time: a new peer connection, the same session
(same peer_id), video both ways again, the other side sees no leave, no join, and keeps its
track of the rebuilt one's video (no new `track` event in the page)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from sfu.client import ClientState
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
from tests.browser.test_recovery import COUNT_EVENTS, page_value
from tests.conftest import MakeClient
from tests.sfu.test_metrics import scrape, value
from tests.sfu.test_rebuild import close_server_side, messages_seen
from tests.util import eventually, eventually_async, recv

# Every participant_joined / participant_left the page's client sees, from now on.
COUNT_ROSTER = """
() => {
  globalThis.roster = [];
  sfuClient.on("participantjoined", (p) => roster.push(`joined ${p.peerId}`));
  sfuClient.on("participantleft", ({participant}) => roster.push(`left ${participant.peerId}`));
}
"""


async def decoding_grows(page: RoomPage, peer_id: str, timeout: float = 20) -> None:
    before = frames_decoded(await page.media(), peer_id)

    async def grown() -> str:
        frames = frames_decoded(await page.media(), peer_id)
        return "" if frames > before + 15 else f"frames decoded {before} -> {frames}"

    await eventually_async(grown, timeout=timeout)


async def test_the_page_and_a_python_client_are_rebuilt_in_their_sessions(
    server: RunningServer,
    open_page: OpenPage,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bot = await make_client("rebuild", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15))
    page = await open_page("rebuild", "Alice", mic=False, init_script=COUNT_EVENTS)
    (page_id,) = await peer_ids(page)
    bot_id = bot.peer_id
    assert bot_id is not None
    await media_flows(page, {bot_id: "bot"}, audio=set())
    page_video = await bot.next_track(timeout=15)
    assert page_video.peer_id == page_id
    await recv(page_video.track, 10)
    await page.page.evaluate(COUNT_ROSTER)
    seen_by_bot = messages_seen(bot)

    # 1. The page's connection, gone on the server: the page makes a new one.
    old_pc_id = await page_value(page, "sfuClient.pc && (sfuClient.pc.__id ??= Math.random())")
    await close_server_side(server, page_id)

    async def page_rebuilt() -> str:
        state = await page.media()
        rebuilds = await page_value(page, "sfuClient.rebuilds")
        if state["peerId"] != page_id or rebuilds != 1 or state["status"] != "connected":
            return f"peer {state['peerId']}, status {state['status']}, rebuilds {rebuilds}"
        return ""

    await eventually_async(page_rebuilt, timeout=20)
    assert await page_value(page, "sfuClient.pc.__id") != old_pc_id
    await decoding_grows(page, bot_id)  # the bot's video, on the page's new connection
    # The page's video reaches the bot again on the same track: its stream went on.
    for _ in range(15):
        frame = await recv(page_video.track, 10)
    assert not page_video.ended.is_set() and frame.width > 0
    assert bot.peer_id == bot_id and set(bot.participants) == {page_id}
    assert not {"ParticipantLeft", "ParticipantJoined", "TrackUnpublished"} & set(seen_by_bot)
    assert isinstance(await page_value(page, "sfuClient.lastRecoverySeconds"), int | float)

    # 2. The bot's connection, gone on the server: the page keeps its track of the bot's video.
    track_events = await page_value(page, "trackEvents")
    await close_server_side(server, bot_id)
    await eventually(lambda: "" if bot.rebuilds == 1 else "bot not rebuilt", timeout=10)
    await bot.wait_state(ClientState.CONNECTED, timeout=20)
    assert bot.peer_id == bot_id
    await decoding_grows(page, bot_id)
    again = await bot.next_track(timeout=15)  # the page's video, on the bot's new connection
    assert again.peer_id == page_id
    await recv(again.track, 10)
    assert await page_value(page, "trackEvents") == track_events
    assert await page_value(page, "roster") == []
    assert await page.status_text() == "Connected"

    samples = await scrape(server)
    assert value(samples, "aiosfu_ice_restarts_total", side="server", path="rebuilt") == 2
    lines = [
        r.getMessage() for r in caplog.records if "(server side, rebuilt) took" in r.getMessage()
    ]
    assert len(lines) == 2, lines
    print("rebuild figures:", lines)
    await asyncio.sleep(0)
    assert_no_console_errors(page)
