"""The room page in real headless Chromium against the real server: the browser client library
(web/sfu-client.js) and the page (web/app.js) over protocol v1."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.rtc import dtls as rtc_dtls
from sfu.server import RunningServer
from tests.browser.conftest import ARTIFACTS, OpenPage
from tests.browser.roompage import RoomPage, describe_missing_media, frames_decoded
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async, recv

# Fake camera of Chromium: 640x480.
CAMERA_WIDTH = 640


async def peer_ids(*pages: RoomPage) -> dict[str, str]:
    """peer_id -> display name, once every page has been welcomed."""
    ids: dict[str, str] = {}
    for page in pages:

        async def welcomed(page: RoomPage = page) -> str:
            peer_id = await page.peer_id()
            if peer_id is None:
                return f"{page.name} has no peer_id: {await page.status_text()}"
            ids[peer_id] = page.name
            return ""

        await eventually_async(welcomed, timeout=10)
    return ids


async def media_flows(
    page: RoomPage, peers: dict[str, str], *, audio: set[str], timeout: float = 20
) -> None:
    """Every peer's video decodes on `page` and keeps decoding; audio arrives from `audio`."""
    first: dict[str, int] = {}

    async def started() -> str:
        state = await page.media()
        first.update({p: frames_decoded(state, p) for p in peers})
        reason = describe_missing_media(state, peers, audio=audio, since={})
        if reason:
            reason += (
                f" (signaling {state['signalingState']}, transceivers {state['transceivers']},"
                f" participants {state['participants']}, console errors {page.console_errors})"
            )
        return f"{page.name}: {reason}" if reason else ""

    await eventually_async(started, timeout=timeout)

    async def growing() -> str:
        state = await page.media()
        reason = describe_missing_media(state, peers, audio=set(), since=first)
        return f"{page.name}: {reason}" if reason else ""

    await eventually_async(growing, timeout=10)


def assert_no_console_errors(*pages: RoomPage) -> None:
    errors = {page.name: page.console_errors for page in pages if page.console_errors}
    assert not errors, f"console errors: {errors}"


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


async def test_page_and_python_client_see_each_other(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    bot = await make_client("mixed", name="bot")
    await bot.publish(TestPatternTrack(320, 240, fps=15), AudioStreamTrack())
    page = await open_page("mixed", "Dora")
    ids = await peer_ids(page)
    (page_peer,) = ids
    assert bot.peer_id is not None

    await media_flows(page, {bot.peer_id: "bot"}, audio={bot.peer_id})
    state = await page.media()
    assert state["tiles"][bot.peer_id]["videoWidth"] == 320
    assert state["tiles"][bot.peer_id]["name"] == "bot"

    def page_video_arrived() -> str:
        kinds = {r.kind for r in bot.remote_tracks.values() if r.peer_id == page_peer}
        return "" if kinds == {"audio", "video"} else f"bot has {kinds} from the page"

    await eventually(page_video_arrived, timeout=15)
    (video,) = [
        r for r in bot.remote_tracks.values() if r.peer_id == page_peer and r.kind == "video"
    ]
    frame = await recv(video.track, 15)
    assert 0 < frame.width <= CAMERA_WIDTH
    # Chromium agreed to the cheaper SRTP profile the server offers (sfu.rtc.dtls).
    (on_server,) = [p for p in server.backend.participants() if p.id == page_peer]
    dtls = on_server.pc.getTransceivers()[0].receiver.transport
    assert rtc_dtls.selected_profile(dtls) == "SRTP_AEAD_AES_128_GCM"
    assert_no_console_errors(page)


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
