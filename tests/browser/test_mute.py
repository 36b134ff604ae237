"""Mute in the room page: the page's buttons mute for everyone (the server stops forwarding), and a
muted participant's tile shows it (a crossed microphone, the avatar for a muted video).

Every wait is a poll with a generous deadline, and each failure says where the state stopped (the
server's publication, the other client's track state, the page's tile): the machine is shared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.publication import Publication
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import assert_no_console_errors, media_flows, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async

TILE_CLASSES = """
(peerId) => [...document.querySelector(`.tile[data-peer-id="${peerId}"]`).classList]
"""

# A signaling message and the page's update take milliseconds; this is for a loaded machine.
DEADLINE = 20.0


def publication(server: RunningServer, peer_id: str, track_id: str) -> Publication | None:
    for participant in server.backend.participants():
        if participant.id == peer_id:
            return participant.publications.get(track_id)
    return None


async def test_muting_in_the_page_and_in_a_bot_is_seen_by_the_other(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("hush", "Alice")
    bob = await make_client("hush", name="bob", decode=False)
    video, audio = TestPatternTrack(320, 240, fps=15), AudioStreamTrack()
    await bob.publish(video, audio)
    ids = await peer_ids(alice)
    assert bob.peer_id is not None
    bob_id = bob.peer_id
    await media_flows(alice, {bob_id: "bob"}, audio={bob_id})
    alice_id = next(iter(ids))

    def alice_tracks() -> dict[str, bool]:
        return {s.source: s.muted for s in bob.track_states.values() if s.peer_id == alice_id}

    def alice_mic(muted: bool) -> str:
        tracks = alice_tracks()
        return "" if tracks.get("microphone") is muted else f"bob's view of alice: {tracks}"

    await eventually(lambda: "" if len(alice_tracks()) == 2 else f"{alice_tracks()}", DEADLINE)
    assert alice_tracks() == {"camera": False, "microphone": False}

    # Alice mutes her microphone: bob is told, and the server forwards him none of it (bob
    # hears of it after the server stopped forwarding, so no packet of it is still on its way).
    await alice.page.click("#toggle-mic")
    await eventually(lambda: alice_mic(True), DEADLINE)
    (participant,) = [p for p in server.backend.participants() if p.id == bob_id]
    (sub,) = [s for s in participant.subscriptions.values() if s.publication.kind == "audio"]
    stopped = sub.packets
    video_sub = next(s for s in participant.subscriptions.values() if s is not sub)
    moving = video_sub.packets
    await eventually(
        lambda: "" if video_sub.packets > moving + 20 else "video stopped too", DEADLINE
    )
    assert sub.packets == stopped, "alice's muted microphone still reaches bob"
    await alice.page.click("#toggle-mic")
    await eventually(lambda: alice_mic(False), DEADLINE)
    await eventually(
        lambda: "" if sub.packets > stopped else "unmuted audio not forwarded", DEADLINE
    )

    # Bob mutes his microphone, then his camera: alice's tile of him shows both.
    async def classes() -> list[str]:
        found: list[str] = await alice.page.evaluate(TILE_CLASSES, bob_id)
        return found

    def shows(track_id: str, wanted: str, present: bool = True) -> Callable[[], Awaitable[str]]:
        async def check() -> str:
            got = await classes()
            if (wanted in got) is present:
                return ""
            pub = publication(server, bob_id, track_id)
            server_says = "unpublished" if pub is None else f"muted={pub.muted}"
            return f"bob's tile: {got}; his track on the server: {server_says}"

        return check

    assert "mic-off" not in await classes()
    await bob.mute(audio)
    await eventually_async(shows(audio.id, "mic-off"), DEADLINE)
    await bob.mute(video)
    await eventually_async(shows(video.id, "no-video"), DEADLINE)
    await bob.mute(video, False)
    await eventually_async(shows(video.id, "no-video", present=False), DEADLINE)
    assert "mic-off" in await classes()
    await media_flows(alice, {bob_id: "bob"}, audio=set())
    assert_no_console_errors(alice)
