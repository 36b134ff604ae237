"""Glare with a real Chromium page whose connection is up: the ids of the offer it rolls back."""

from __future__ import annotations

import pytest
from aiortc.mediastreams import AudioStreamTrack

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.participant import Participant
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import assert_no_console_errors, media_flows, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually

DEADLINE = 20


@pytest.mark.parametrize("devices", [("mic",), ("cam",), ("mic", "cam"), ("cam", "mic")])
async def test_a_pages_first_media_offer_crossing_the_servers_is_rolled_back_and_answered(
    devices: tuple[str, ...],
    server: RunningServer,
    open_page: OpenPage,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Seen in test_mute: the page's connection carried only the data channels when its camera's
    # offer crossed the server's offer of a bot's tracks. Chromium rolled its offer back but kept
    # its header-extension ids (transport-cc 3) for the mid, and refused the server's offer,
    # which gave 3 to abs-send-time on that same mid ("RTP extension ID reassignment not
    # supported"): the page's session failed and started over. Made on purpose here: the bot
    # publishes only once the page's media offer reaches the server.
    alice = await open_page("glare-ids", "Alice", cam=False, mic=False)
    (alice_id,) = await peer_ids(alice)
    bot: Client = await make_client("glare-ids", name="bot", decode=False)
    on_server = next(p for p in server.backend.participants() if p.id == alice_id)
    await eventually(
        lambda: "" if on_server.pc.connectionState == "connected" else "alice not connected",
        DEADLINE,
    )
    assert not [t for t in on_server.pc.getTransceivers() if t.currentDirection], "media already"
    original = Participant.offer
    crossed: list[str] = []

    async def offer_after_ours(self: Participant, sdp: str) -> None:
        if self.id == alice_id and not crossed and ("m=video" in sdp or "m=audio" in sdp):
            crossed.append(sdp)
            await bot.publish(TestPatternTrack(160, 120, fps=10), AudioStreamTrack())

            def ours_pending() -> str:
                state = self.pc.signalingState
                return "" if state == "have-local-offer" else f"server offer: {state}"

            await eventually(ours_pending, DEADLINE)
        await original(self, sdp)

    monkeypatch.setattr(Participant, "offer", offer_after_ours)
    for device in devices:
        await alice.page.click(f"#toggle-{device}")
    await eventually(lambda: "" if on_server.glare_ignored == 1 else "no glare yet", DEADLINE)
    assert bot.peer_id is not None
    await media_flows(alice, {bot.peer_id: "bot"}, audio={bot.peer_id})
    assert_no_console_errors(alice)
    state = await alice.media()
    assert state["rollbacks"] == 1, state
    assert await alice.peer_id() == alice_id, "the page's session started over"

    def bot_sees_alice() -> str:
        tracks = [r for r in bot.remote_tracks.values() if r.peer_id == alice_id]
        return "" if len(tracks) == len(devices) else f"bot has {len(tracks)} tracks from alice"

    await eventually(bot_sees_alice, DEADLINE)
    assert not bot.errors
