"""The active speaker in the room page: the tile of a bot playing a tone is highlighted while it
plays, and no longer once it is silent."""

from __future__ import annotations

from sfu.media import ToneTrack
from tests.browser.conftest import OpenPage
from tests.browser.roompage import assert_no_console_errors, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually_async

SPEAKING = """
() => [...document.querySelectorAll(".tile.speaking")].map((t) => t.dataset.peerId)
"""


async def test_the_speakers_tile_is_highlighted(
    open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("talk", "Alice", cam=False, mic=False)
    await peer_ids(alice)
    bot = await make_client("talk", name="bot")
    tone = ToneTrack()
    await bot.publish(tone)

    async def highlighted(wanted: list[str]) -> str:
        got: list[str] = await alice.page.evaluate(SPEAKING)
        return "" if got == wanted else f"highlighted {got}, not {wanted}"

    await eventually_async(lambda: highlighted([bot.peer_id or ""]), timeout=10)
    tone.playing = False
    await eventually_async(lambda: highlighted([]), timeout=5)
    assert_no_console_errors(alice)
