"""The room page in real headless Chromium against the real server: the browser client library
(web/sfu-client.js) and the page (web/app.js) over protocol v1."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.browser.conftest import ARTIFACTS, OpenPage
from tests.browser.roompage import (
    RoomPage,
    assert_no_console_errors,
    media_flows,
    peer_ids,
)
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

# The page asks Chromium's fake camera for 720p: its top simulcast layer (web/app.js).
CAMERA_WIDTH = 1280


async def test_three_pages_see_and_hear_each_other(open_page: OpenPage) -> None:
    pages = [await open_page("trio", name) for name in ("Alice", "Bob", "Carol")]
    ids = await peer_ids(*pages)
    for page in pages:
        others = {p: n for p, n in ids.items() if n != page.name}
        await media_flows(page, others, audio=set(others))

    alice = pages[0]

    async def overlay_and_path() -> str:
        state = await alice.media()
        if state["pair"] is None:
            return "no selected ICE pair yet"
        if f"ICE {state['pair'][0]} ↔ {state['pair'][1]}" not in state["icePath"]:
            return f"footer shows {state['icePath']!r}, selected pair is {state['pair']}"
        for tile in state["tiles"].values():
            # Chromium may scale its camera down while REMB ramps up: any size will do.
            if "\N{MULTIPLICATION SIGN}" not in tile["stats"] or "fps" not in tile["stats"]:
                return f"overlay of {tile['name']} shows {tile['stats']!r}"
        return ""

    await eventually_async(overlay_and_path, timeout=10)
    state = await alice.media()
    assert state["pair"] == ["host", "host"], state["pair"]
    assert {t["name"] for t in state["tiles"].values()} == {"Bob", "Carol"}
    assert await alice.status_text() == "Connected"

    ARTIFACTS.mkdir(exist_ok=True)
    await alice.page.screenshot(path=str(ARTIFACTS / "room.png"))
    assert_no_console_errors(*pages)


async def test_closing_a_page_removes_its_tile_within_2s(open_page: OpenPage) -> None:
    alice = await open_page("bye", "Alice")
    bob = await open_page("bye", "Bob")
    ids = await peer_ids(alice, bob)
    bob_id = next(p for p, n in ids.items() if n == "Bob")
    await media_flows(alice, {bob_id: "Bob"}, audio={bob_id})

    await bob.page.close()

    async def tile_gone() -> str:
        tiles = (await alice.media())["tiles"]
        return f"Bob's tile is still there: {sorted(tiles)}" if bob_id in tiles else ""

    await eventually_async(tile_gone, timeout=2, interval=0.05)
    assert await alice.page.inner_text("#participant-count") == "1 in the room"
    assert_no_console_errors(alice, bob)


# Holds the server's messages from its next offer on (in order) until release(), and counts the
# offers this page sends: lets a test make the page's offer cross the server's on the wire.
HOLD_SERVER_OFFERS = """
(() => {
  const Native = globalThis.WebSocket;
  const hold = { active: false, queue: [], offersHeld: 0, offersSent: 0 };
  hold.release = () => {
    hold.active = false;
    const queue = hold.queue;
    hold.queue = [];
    for (const deliver of queue) deliver();
  };
  globalThis.signalingHold = hold;
  globalThis.WebSocket = class extends Native {
    addEventListener(type, listener, options) {
      if (type !== "message") return super.addEventListener(type, listener, options);
      return super.addEventListener(type, (event) => {
        const type = JSON.parse(event.data).type;
        if (hold.active && (hold.queue.length > 0 || type === "offer")) {
          if (type === "offer") hold.offersHeld += 1;
          hold.queue.push(() => listener.call(this, event));
          return;
        }
        listener.call(this, event);
      }, options);
    }
    send(data) {
      if (JSON.parse(data).type === "offer") hold.offersSent += 1;
      super.send(data);
    }
  };
})();
"""


async def test_glare_pages_publish_while_the_server_renegotiates(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    carol = await make_client("glare", name="carol")
    await carol.publish(AudioStreamTrack())
    pages = [
        await open_page("glare", name, cam=False, mic=False, init_script=HOLD_SERVER_OFFERS)
        for name in ("Alice", "Bob")
    ]
    ids = await peer_ids(*pages)
    assert carol.peer_id is not None
    for page in pages:

        async def hears_carol(page: RoomPage = page) -> str:
            state = await page.media()
            tile = state["tiles"].get(carol.peer_id)
            if state["connectionState"] != "connected" or tile is None or not tile["audio"]:
                return f"{page.name}: {state['connectionState']}, carol's tile {tile}"
            return ""

        await eventually_async(hears_carol, timeout=15)
        await page.page.evaluate("signalingHold.active = true")

    # The server renegotiates both pages (carol's video)...
    publishing = asyncio.ensure_future(carol.publish(TestPatternTrack(320, 240, fps=15)))
    for page in pages:

        async def offer_held(page: RoomPage = page) -> str:
            held: str = await page.page.evaluate(
                "signalingHold.offersHeld > 0 ? '' : 'no server offer yet'"
            )
            return held

        await eventually_async(offer_held, timeout=10)
    # ...while both pages start their cameras and offer; the server ignores both offers.
    for page in pages:
        await page.page.click("#toggle-cam")
    on_server = {p.id: p for p in server.backend.participants() if p.id in ids}

    def both_ignored() -> str:
        counts = {ids[i]: p.glare_ignored for i, p in on_server.items()}
        return "" if all(counts.values()) else f"offers ignored by the server: {counts}"

    await eventually(both_ignored, timeout=10)
    for page in pages:
        await page.page.evaluate("signalingHold.release()")
    await asyncio.wait_for(publishing, 15)

    everyone = {**ids, carol.peer_id: "carol"}
    for page in pages:
        others = {p: n for p, n in everyone.items() if n != page.name}
        await media_flows(page, others, audio={carol.peer_id})
        state = await page.media()
        assert state["rollbacks"] >= 1, f"{page.name} saw no glare"
        assert state["signalingState"] == "stable", state["signalingState"]
    for participant in on_server.values():
        assert participant.pc.signalingState == "stable"

    def carol_sees_both() -> str:
        videos = {r.peer_id for r in carol.remote_tracks.values() if r.kind == "video"}
        return "" if videos == set(ids) else f"carol has video from {videos}"

    await eventually(carol_sees_both, timeout=15)
    for remote in carol.remote_tracks.values():
        if remote.kind == "video":
            assert 0 < (await recv(remote.track, 15)).width <= CAMERA_WIDTH
    assert not carol.errors
    assert_no_console_errors(*pages)
