"""ICE_MODE=turn-only with real Chromium, a Python client and a real coturn (use-auth-secret):
both see each other's video over relay pairs, fresh credentials reach the page before the old
ones expire, and a page whose TURN credentials are refused ends failed, naming TURN."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sfu.media import TestPatternTrack
from sfu.rtc.candidates import selected_pair_types
from sfu.server import RunningServer, ServerConfig
from signaling.ice import IceConfig
from tests.browser.conftest import OpenPage
from tests.browser.roompage import assert_no_console_errors, media_flows, peer_ids
from tests.conftest import LOOPBACK, MakeClient
from tests.turnserver import SECRET, Coturn, verifies
from tests.util import eventually, eventually_async, recv

TTL = 8.0  # short, so that the page gets fresh credentials within the test


@pytest.fixture
async def server(coturn: Coturn) -> AsyncIterator[RunningServer]:
    """This module's server: turn-only, relaying through the test's coturn."""
    ice = IceConfig(mode="turn-only", turn_urls=(coturn.url,), turn_secret=SECRET, turn_ttl=TTL)
    running = await RunningServer(ServerConfig(port=0, ice_addresses=LOOPBACK, ice=ice)).start()
    try:
        yield running
    finally:
        await running.stop()


_ICE_SERVERS = "() => globalThis.sfuClient?.pc?.getConfiguration().iceServers ?? []"
_LOCAL_CANDIDATE_TYPES = """async () => {
  const stats = await globalThis.sfuClient.pc.getStats();
  const local = [...stats.values()].filter((s) => s.type === "local-candidate");
  return local.map((s) => s.candidateType);
}"""


async def test_page_and_python_client_relay_only(
    server: RunningServer, coturn: Coturn, open_page: OpenPage, make_client: MakeClient
) -> None:
    bot = await make_client("relayed", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15))
    page = await open_page("relayed", "Dora", mic=False)
    [page_peer] = await peer_ids(page)
    assert bot.peer_id is not None
    await media_flows(page, {bot.peer_id: "bot"}, audio=set())

    def page_video_arrived() -> str:
        kinds = {r.kind for r in bot.remote_tracks.values() if r.peer_id == page_peer}
        return "" if "video" in kinds else f"bot has {kinds} from the page"

    await eventually(page_video_arrived, timeout=15)
    [video] = [r for r in bot.remote_tracks.values() if r.peer_id == page_peer]
    frame = await recv(video.track, 15)
    assert frame.width > 0

    # The selected pair is relay on both clients: Chromium's getStats, aioice's nominated pair.
    state = await page.media()
    assert state["pair"] == ["relay", "relay"], state["pair"]
    assert bot.pc is not None and selected_pair_types(bot.pc) == ("relay", "relay")

    # What the page gathered is relay only, read from its ICE agent's candidates: a fresh-clone CI
    # run once saw localDescription with no candidate line at all (a renegotiation under way).
    async def gathered_relay_only() -> str:
        types: list[str] = await page.page.evaluate(_LOCAL_CANDIDATE_TYPES)
        return "" if types and set(types) == {"relay"} else f"local candidates {types}"

    await eventually_async(gathered_relay_only, timeout=10)
    users = {u.split(":", 1)[1] for u in coturn.allocations()}
    assert {page_peer, bot.peer_id, f"sfu-{page_peer}"} <= users, coturn.allocations()

    # Fresh credentials reach the page (pc.setConfiguration) before the welcome's expire.
    [first] = await page.page.evaluate(_ICE_SERVERS)
    expires = int(first["username"].split(":")[0])
    fresh: dict[str, Any] = {}

    async def refreshed() -> str:
        [held] = await page.page.evaluate(_ICE_SERVERS)
        fresh.update(held)
        return "" if held["username"] != first["username"] else "still the welcome's"

    await eventually_async(refreshed, timeout=TTL)
    assert time.time() < expires
    assert verifies(fresh["username"], fresh["credential"])
    assert fresh["username"].endswith(f":{page_peer}")
    assert int(fresh["username"].split(":")[0]) > expires
    assert await page.status_text() == "Connected"
    assert_no_console_errors(page)


async def test_expired_credentials_end_the_page_failed_naming_turn(
    server: RunningServer, coturn: Coturn, open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub hands out credentials that expired an hour ago, signed with the right secret.
    minted = IceConfig.client_infos
    monkeypatch.setattr(
        IceConfig, "client_infos", lambda self, peer, now: minted(self, peer, now - 2 * TTL)
    )
    started = time.monotonic()
    page = await open_page("late", "Eve", mic=False)

    async def failed() -> str:
        state = await page.media()
        return "" if state["status"] == "failed" else f"status {state['status']}"

    await eventually_async(failed, timeout=10)
    assert time.monotonic() - started < 10
    text = await page.status_text()
    assert text.startswith("Connection failed — TURN relay unavailable: "), text
    assert "401" in text and "wrong or expired credentials" in text, text
    assert coturn.refusals() >= 1
    # It left the room (the socket is closed): nobody waits for it.
    await eventually(lambda: "" if not server.backend.participants() else "still in the room")
