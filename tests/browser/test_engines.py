"""The room page in each browser engine against the real server: Chromium (Playwright) and
Firefox ESR (WebDriver BiDi), each with a Python client, then both and a Python client in one room.
Firefox starts once for the module."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiortc.mediastreams import AudioStreamTrack

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.rtc import dtls as rtc_dtls
from sfu.server import RunningServer
from tests.browser.conftest import OpenFirefoxPage, OpenPage
from tests.browser.roompage import RoomTab, assert_no_console_errors, media_flows, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

OpenTab = Callable[..., Awaitable[RoomTab]]

# The page asks the fake cameras for 720p, its top simulcast layer (either may scale down while
# its bandwidth estimate ramps up).
CAMERA_WIDTH = 1280


async def decodes_video_of(bot: Client, peer_ids: set[str]) -> None:
    """The bot receives video from each of these peers and decodes frames of a real size."""

    def arrived() -> str:
        videos = {r.peer_id for r in bot.remote_tracks.values() if r.kind == "video"}
        return "" if peer_ids <= videos else f"{bot.name} has video from {videos}"

    await eventually(arrived, timeout=20)
    for remote in bot.remote_tracks.values():
        if remote.kind == "video" and remote.peer_id in peer_ids:
            for _ in range(3):
                frame = await recv(remote.track, 15)
            assert 0 < frame.width <= CAMERA_WIDTH, (remote.peer_id, frame.width)


@pytest.fixture(params=["chromium", "firefox"])
def open_engine_page(request: pytest.FixtureRequest) -> OpenTab:
    """Opens the room page in each engine in turn."""
    fixture = "open_page" if request.param == "chromium" else "open_firefox_page"
    opener: OpenTab = request.getfixturevalue(fixture)
    return opener


async def test_page_and_python_client_see_each_other(
    server: RunningServer, open_engine_page: OpenTab, make_client: MakeClient
) -> None:
    bot = await make_client("mixed", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15), AudioStreamTrack())
    page = await open_engine_page("mixed", "Dora")
    (page_peer,) = await peer_ids(page)
    assert bot.peer_id is not None

    await media_flows(page, {bot.peer_id: "bot"}, audio={bot.peer_id})
    state = await page.media()
    assert state["tiles"][bot.peer_id]["videoWidth"] == 320
    assert state["tiles"][bot.peer_id]["name"] == "bot"
    assert state["pair"] == ["host", "host"], state["pair"]

    async def footer_shows_the_path() -> str:
        text = (await page.media())["icePath"]
        return "" if "ICE host ↔ host" in text else f"footer shows {text!r}"

    await eventually_async(footer_shows_the_path, timeout=10)
    await decodes_video_of(bot, {page_peer})

    # The browser agreed to the cheaper SRTP profile the server offers (sfu.rtc.dtls).
    (on_server,) = [p for p in server.backend.participants() if p.id == page_peer]
    dtls = on_server.pc.getTransceivers()[0].receiver.transport
    assert rtc_dtls.selected_profile(dtls) == "SRTP_AEAD_AES_128_GCM"
    assert not bot.errors
    assert_no_console_errors(page)


async def test_firefox_chromium_and_python_client_all_see_each_other(
    open_firefox_page: OpenFirefoxPage, open_page: OpenPage, make_client: MakeClient
) -> None:
    bot = await make_client("trio-engines", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15), AudioStreamTrack())
    fox = await open_firefox_page("trio-engines", "Fox")
    chrome = await open_page("trio-engines", "Chrome")
    ids = await peer_ids(fox, chrome)
    assert bot.peer_id is not None
    everyone = {**ids, bot.peer_id: "bot"}

    for page in (fox, chrome):
        others = {p: n for p, n in everyone.items() if n != page.name}
        await media_flows(page, others, audio=set(others))
    await decodes_video_of(bot, set(ids))
    assert not bot.errors
    assert_no_console_errors(fox, chrome)
