"""Chat in the room page, over the data channels, with Python clients in the room: what a bot sends
shows as text (markup included, never rendered), in order, with its name and a time, counted as
unread while the panel is closed; what the page sends reaches the bots with its sender."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.participant import Participant
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import RoomPage, assert_no_console_errors, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async

MARKUP = '<b>bold</b> <img src="x" onerror="document.title=\'pwned\'"> & </p>'

CHAT = """
() => ({
  messages: [...document.querySelectorAll("#chat-log li")].map((li) => ({
    who: li.querySelector(".who").textContent,
    time: li.querySelector("time").textContent,
    text: li.querySelector(".text").textContent,
    private: li.classList.contains("private"),
  })),
  elements: document.querySelectorAll("#chat-log .text *").length,
  unread: document.getElementById("chat-unread").hidden ? 0 :
    Number(document.getElementById("chat-unread").textContent),
  open: !document.getElementById("chat").hidden,
  title: document.title,
})
"""


async def chat(page: RoomPage) -> dict[str, Any]:
    state: dict[str, Any] = await page.page.evaluate(CHAT)
    return state


def channels_open(server: RunningServer, count: int) -> str:
    ready = [
        p.id
        for p in server.backend.participants()
        if sorted(k for k, c in p.data.channels.items() if c.readyState == "open")
        == ["lossy", "reliable"]
    ]
    return "" if len(ready) == count else f"data channels open on the server for {ready}"


async def test_the_page_chats_with_bots_and_shows_markup_as_text(
    server: RunningServer, open_page: OpenPage, make_client: MakeClient
) -> None:
    alice = await open_page("chat", "Alice", cam=False, mic=False)
    (alice_id,) = await peer_ids(alice)
    bob: Client = await make_client("chat", name="bob", data=True)
    carol: Client = await make_client("chat", name="carol", data=True)
    await eventually(lambda: channels_open(server, 3), timeout=15)

    # Bob's messages, the markup one among them: in order, as text, counted while closed.
    for n in range(5):
        await bob.send_data({"type": "chat", "text": f"hello {n}"})
    await bob.send_data({"type": "chat", "text": MARKUP})
    await bob.send_data({"type": "cursor", "x": 1})  # not chat: the page shows nothing of it

    async def six_shown() -> str:
        state = await chat(alice)
        return "" if len(state["messages"]) == 6 else f"chat: {state}"

    await eventually_async(six_shown, timeout=20)
    state = await chat(alice)
    assert [m["text"] for m in state["messages"]] == [f"hello {n}" for n in range(5)] + [MARKUP]
    assert {m["who"] for m in state["messages"]} == {"bob"}
    assert all(":" in m["time"] for m in state["messages"])
    assert state["elements"] == 0 and state["title"] != "pwned"  # nothing was rendered
    assert (state["unread"], state["open"]) == (6, False)
    await alice.page.click("#toggle-chat")
    state = await chat(alice)
    assert (state["unread"], state["open"]) == (0, True)

    # Alice writes: both bots get it, from her.
    await alice.page.fill("#chat-input", "hi bots <i>")
    await alice.page.press("#chat-input", "Enter")
    for bot in (bob, carol):
        msg = await bot.next_data()
        while msg.sender != alice_id:  # carol got all of bob's too
            msg = await bot.next_data()
        assert (msg.sender, msg.payload, msg.to) == (
            alice_id,
            {"type": "chat", "text": "hi bots <i>"},
            None,
        )
    assert (await chat(alice))["messages"][-1] == {
        "who": "You",
        "time": (await chat(alice))["messages"][-1]["time"],
        "text": "hi bots <i>",
        "private": False,
    }

    # Carol writes to alice alone: shown as private; bob gets nothing of it.
    await carol.send_data({"type": "chat", "text": "just you"}, to=[alice_id])
    await bob.send_data({"type": "chat", "text": "to all"})

    async def nine_shown() -> str:
        state = await chat(alice)
        return "" if len(state["messages"]) == 9 else f"chat: {state['messages']}"

    await eventually_async(nine_shown, timeout=20)
    last = (await chat(alice))["messages"][-2:]
    assert {(m["who"], m["text"], m["private"]) for m in last} == {
        ("carol", "just you", True),
        ("bob", "to all", False),
    }
    # Carol's next message to the room is the first bob gets from her: the private one never.
    await carol.send_data("after")
    msg = await bob.next_data()
    while msg.sender != carol.peer_id:
        msg = await bob.next_data()
    assert msg.payload == "after"
    assert not (bob.errors or carol.errors)
    assert_no_console_errors(alice)


async def test_the_pages_data_channels_open_when_its_offers_cross_the_servers(
    server: RunningServer,
    open_page: OpenPage,
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Glare made on purpose, twice: the server sees each of the page's first two offers only
    # once an offer of its own (a bot's new track) is pending, and ignores it. The first is the
    # first exchange (the page answers on a fresh connection); the second crosses on a
    # connection that is up, and Chromium rolls it back. Were the data channels' m-line first
    # in that offer, Chromium would never offer it again and the channels would never open
    # (seen: 3 full-suite runs in 9); the server's offers carry it (join.data) so it never is.
    bot: Client = await make_client("glare", name="bot", data=True)
    await bot.publish(TestPatternTrack(160, 120, fps=10))
    forced: dict[str, int] = {}
    publishing: list[asyncio.Future[None]] = []
    original = Participant.offer

    async def offer_after_ours(self: Participant, sdp: str) -> None:
        if self.id != bot.peer_id and forced.get(self.id, 0) < 2:
            forced[self.id] = forced.get(self.id, 0) + 1
            if self.pc.signalingState != "have-local-offer":
                track = TestPatternTrack(160, 120, fps=10)
                publishing.append(asyncio.ensure_future(bot.publish(track)))

            def ours_pending() -> str:
                state = self.pc.signalingState
                return "" if state == "have-local-offer" else f"server offer: {state}"

            await eventually(ours_pending, timeout=15)
        await original(self, sdp)

    monkeypatch.setattr(Participant, "offer", offer_after_ours)
    alice = await open_page("glare", "Alice", mic=False)
    (alice_id,) = await peer_ids(alice)
    on_server = next(p for p in server.backend.participants() if p.id == alice_id)
    await eventually(lambda: "" if on_server.glare_ignored == 2 else "not yet two glares", 20)
    await eventually(lambda: channels_open(server, 2), timeout=20)
    await asyncio.wait_for(asyncio.gather(*publishing), 20)

    await bot.send_data({"type": "chat", "text": "after the glare"})

    async def shown() -> str:
        texts = [m["text"] for m in (await chat(alice))["messages"]]
        return "" if texts == ["after the glare"] else f"chat: {texts}"

    await eventually_async(shown, timeout=20)
    await alice.page.click("#toggle-chat")
    await alice.page.fill("#chat-input", "heard you")
    await alice.page.press("#chat-input", "Enter")
    msg = await bot.next_data()
    assert (msg.sender, msg.payload) == (alice_id, {"type": "chat", "text": "heard you"})
    state = await alice.media()
    assert state["rollbacks"] >= 2, state
    # The page publishes its camera once, and it reaches the bot.
    assert [p.kind for p in on_server.publications.values()] == ["video"]

    def bot_sees_alice() -> str:
        videos = [r for r in bot.remote_tracks.values() if r.peer_id == alice_id]
        return "" if len(videos) == 1 else f"bot has {len(videos)} tracks from alice"

    await eventually(bot_sees_alice, timeout=20)
    assert not bot.errors
    assert_no_console_errors(alice)
