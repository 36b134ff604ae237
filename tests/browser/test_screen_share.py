"""Screen share from the room page in headless Chromium: getDisplayMedia (the fake capture of
testing.md's flags: a 1280x720 screen and its sound) published as a second video track marked
`screen` (and `screen_audio`), received by another page as a large tile and by a Python client
as tracks of those sources; the browser's own stop control ends it for everyone. Also takes
the docs' screenshot of a room in use: a shared screen, a speaker highlighted, the chat open."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sfu.client import RemoteTrack
from sfu.media import ToneTrack
from sfu.server import RunningServer
from tests.browser.conftest import ARTIFACTS, OpenPage
from tests.browser.roompage import (
    RoomPage,
    assert_no_console_errors,
    frames_decoded,
    media_flows,
    peer_ids,
)
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

# What the browser does when its "Stop sharing" control is used: the capture ends (the track's
# readyState becomes "ended") and the track fires `ended`. Headless Chromium shows no such
# control, so the test does the same to the page's screen track.
STOP_SHARING = """
() => {
  const [track] = [...sfuClient._described].find(([t, d]) => d.source === "screen") ?? [];
  if (!track) return false;
  track.stop();
  track.dispatchEvent(new Event("ended"));
  return true;
}
"""

SHARE_BUTTON = '() => document.querySelector("#share-screen .label").textContent'


def screen_tracks(client_tracks: dict[str, RemoteTrack], peer_id: str) -> dict[str, RemoteTrack]:
    return {
        r.source: r
        for r in client_tracks.values()
        if r.peer_id == peer_id and r.source.startswith("screen") and not r.ended.is_set()
    }


async def screen_tile(page: RoomPage, peer_id: str) -> str:
    """ "" once `page` decodes `peer_id`'s shared screen in its screen tile."""
    state = await page.media()
    key = f"{peer_id}/screen"
    if frames_decoded(state, key) < 10:
        return f"{page.name}: screen tile of {peer_id}: {state['tiles'].get(key)}"
    return ""


async def test_a_shared_screen_reaches_a_page_and_a_bot_and_the_browsers_stop_ends_it(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("screen", "Alice", mic=False)
    carol = await open_page("screen", "Carol", cam=False, mic=False)
    ids = {name: peer for peer, name in (await peer_ids(alice, carol)).items()}
    alice_id = ids["Alice"]
    bob = await make_client("screen", name="bob")
    await media_flows(carol, {alice_id: "Alice"}, audio=set())  # her camera, first

    await alice.page.click("#share-screen")
    await eventually_async(screen_tile_of(carol, alice_id), timeout=20)
    state = await carol.media()
    screen = state["tiles"][f"{alice_id}/screen"]
    assert (screen["videoWidth"], screen["videoHeight"]) == (1280, 720)  # nothing cropped
    assert screen["name"] == "Alice's screen"
    assert frames_decoded(state, alice_id) > 0  # her camera goes on in her own tile
    assert await alice.page.evaluate(SHARE_BUTTON) == "Stop sharing"

    await eventually(
        lambda: "" if len(screen_tracks(bob.remote_tracks, alice_id)) == 2 else "bob waits",
        timeout=15,
    )
    shared = screen_tracks(bob.remote_tracks, alice_id)
    assert {r.kind for r in shared.values()} == {"audio", "video"}
    assert sorted(shared) == ["screen", "screen_audio"]
    camera = [r for r in bob.remote_tracks.values() if r.source == "camera"]
    assert len(camera) == 1 and camera[0].track is not shared["screen"].track
    frame = await recv(shared["screen"].track, 15)
    assert 0 < frame.width <= 1280  # Chromium may start a screen smaller, bandwidth allowing

    # The browser's own stop: the share ends for everyone.
    assert await alice.page.evaluate(STOP_SHARING)
    await eventually(
        lambda: "" if not screen_tracks(bob.remote_tracks, alice_id) else "bob still has it",
        timeout=10,
    )
    assert not [s for s in bob.track_states.values() if s.source.startswith("screen")]

    async def gone() -> str:
        state = await carol.media()
        return "" if f"{alice_id}/screen" not in state["tiles"] else "carol's screen tile stays"

    await eventually_async(gone, timeout=10)
    assert await alice.page.evaluate(SHARE_BUTTON) == "Share screen"
    await media_flows(carol, {alice_id: "Alice"}, audio=set())  # the camera goes on
    assert_no_console_errors(alice, carol)


def screen_tile_of(page: RoomPage, peer_id: str) -> Callable[[], Awaitable[str]]:
    return lambda: screen_tile(page, peer_id)


SPEAKING = '() => [...document.querySelectorAll(".tile.speaking")].map((t) => t.dataset.peerId)'
CHAT_LINES = '() => document.querySelectorAll("#chat-log li").length'


async def test_a_room_in_use_for_the_docs(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("standup", "Alice", mic=False)
    bob = await open_page("standup", "Bob", mic=False)
    ids = {name: peer for peer, name in (await peer_ids(alice, bob)).items()}
    dana = await make_client("standup", name="Dana", data=True)
    tone = ToneTrack()
    await dana.publish(tone)
    await alice.page.click("#share-screen")
    await bob.page.click("#toggle-chat")
    await eventually_async(screen_tile_of(bob, ids["Alice"]), timeout=30)

    def channels_open() -> str:
        ready = [
            p.id
            for p in server.backend.participants()
            if len([c for c in p.data.channels.values() if c.readyState == "open"]) == 2
        ]
        return "" if len(ready) == 3 else f"data channels open for {ready}"

    await eventually(channels_open, timeout=30)
    await alice.page.click("#toggle-chat")
    await alice.page.fill("#chat-input", "Sharing the release checklist")
    await alice.page.press("#chat-input", "Enter")
    await dana.send_data({"type": "chat", "text": "Looks good: <b>ship it</b>"})

    async def in_use() -> str:
        speaking: list[str] = await bob.page.evaluate(SPEAKING)
        lines: int = await bob.page.evaluate(CHAT_LINES)
        if speaking != [dana.peer_id] or lines < 2:
            return f"speaking {speaking}, {lines} chat lines"
        return ""

    await eventually_async(in_use, timeout=30)
    await media_flows(bob, {ids["Alice"]: "Alice"}, audio=set())
    ARTIFACTS.mkdir(exist_ok=True)
    # docs/room-in-use.png is this, copied by hand when the page changes.
    await bob.page.screenshot(path=str(ARTIFACTS / "room-in-use.png"))
    assert_no_console_errors(alice, bob)
