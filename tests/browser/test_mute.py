"""Mute in the room page: the page's buttons mute for everyone (the server stops forwarding), and a
muted participant's tile shows it (a crossed microphone, the avatar for a muted video)."""

from __future__ import annotations

from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import assert_no_console_errors, media_flows, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async

TILE_CLASSES = """
(peerId) => [...document.querySelector(`.tile[data-peer-id="${peerId}"]`).classList]
"""


async def test_muting_in_the_page_and_in_a_bot_is_seen_by_the_other(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("hush", "Alice")
    bob = await make_client("hush", name="bob", decode=False)
    video, audio = TestPatternTrack(320, 240, fps=15), AudioStreamTrack()
    await bob.publish(video, audio)
    ids = await peer_ids(alice)
    assert bob.peer_id is not None
    await media_flows(alice, {bob.peer_id: "bob"}, audio={bob.peer_id})
    alice_id = next(iter(ids))

    def alice_tracks() -> dict[str, bool]:
        return {s.source: s.muted for s in bob.track_states.values() if s.peer_id == alice_id}

    await eventually(lambda: "" if len(alice_tracks()) == 2 else f"{alice_tracks()}", timeout=10)
    assert alice_tracks() == {"camera": False, "microphone": False}

    # Alice mutes her microphone: bob is told, and the server forwards him none of it.
    await alice.page.click("#toggle-mic")
    await eventually(lambda: "" if alice_tracks()["microphone"] else f"{alice_tracks()}")
    (participant,) = [p for p in server.backend.participants() if p.id == bob.peer_id]
    (sub,) = [s for s in participant.subscriptions.values() if s.publication.kind == "audio"]
    stopped = sub.packets
    video_sub = next(s for s in participant.subscriptions.values() if s is not sub)
    moving = video_sub.packets
    await eventually(lambda: "" if video_sub.packets > moving + 20 else "video stopped too")
    assert sub.packets == stopped, "alice's muted microphone still reaches bob"
    await alice.page.click("#toggle-mic")
    await eventually(lambda: "" if not alice_tracks()["microphone"] else "still muted")
    await eventually(lambda: "" if sub.packets > stopped else "unmuted audio not forwarded")

    # Bob mutes his microphone, then his camera: alice's tile of him shows both.
    async def classes() -> list[str]:
        found: list[str] = await alice.page.evaluate(TILE_CLASSES, bob.peer_id)
        return found

    async def shows(wanted: str, present: bool = True) -> str:
        got = await classes()
        return "" if (wanted in got) is present else f"bob's tile: {got}"

    assert "mic-off" not in await classes()
    await bob.mute(audio)
    await eventually_async(lambda: shows("mic-off"))
    await bob.mute(video)
    await eventually_async(lambda: shows("no-video"))
    await bob.mute(video, False)
    await eventually_async(lambda: shows("no-video", present=False))
    assert "mic-off" in await classes()
    await media_flows(alice, {bob.peer_id: "bob"}, audio=set())
    assert_no_console_errors(alice)
