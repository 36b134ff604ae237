"""Chat in the room page, over the data channels, with Python clients in the room: what a bot sends
shows as text (markup included, never rendered), in order, with its name and a time, counted as
unread while the panel is closed; what the page sends reaches the bots with its sender."""

from __future__ import annotations

from typing import Any

from sfu.client import Client
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
