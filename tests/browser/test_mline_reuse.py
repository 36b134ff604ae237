"""A page that stays while publishers come and go, in Chromium and in Firefox: the server reuses
the m-lines of the tracks that ended (sfu.participant), and the page shows each new publisher's
video on them (the page's client takes an m-line with a new msid for a new track)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.browser.roompage import RoomTab, assert_no_console_errors, media_flows, peer_ids
from tests.conftest import MakeClient
from tests.util import eventually, eventually_async

ROUNDS = 3
AT_ONCE = 2

OpenTab = Callable[..., Awaitable[RoomTab]]


@pytest.fixture(params=["chromium", "firefox"])
def open_engine_page(request: pytest.FixtureRequest) -> OpenTab:
    fixture = "open_page" if request.param == "chromium" else "open_firefox_page"
    opener: OpenTab = request.getfixturevalue(fixture)
    return opener


async def publish(make_client: MakeClient, name: str) -> Client:
    publisher = await make_client("reuse", name=name)
    await publisher.publish(TestPatternTrack(160, 120, fps=15))
    return publisher


async def test_a_page_gets_new_tracks_on_the_m_lines_of_ended_ones(
    server: RunningServer, open_engine_page: OpenTab, make_client: MakeClient
) -> None:
    page = await open_engine_page("reuse", "Stays", cam=False, mic=False)
    ids = await peer_ids(page)
    (participant,) = [p for p in server.backend.participants() if p.id in ids]
    for round_ in range(ROUNDS):
        publishers = await asyncio.gather(
            *(publish(make_client, f"p{round_}.{i}") for i in range(AT_ONCE))
        )
        peers = {p.peer_id: p.name for p in publishers if p.peer_id and p.name}
        await media_flows(page, peers, audio=set())
        await asyncio.gather(*(p.close() for p in publishers))

        async def gone(peers: dict[str, str] = peers) -> str:
            tiles = (await page.media())["tiles"]
            left = [name for peer, name in peers.items() if peer in tiles]
            return f"tiles still shown: {left}" if left else ""

        await eventually_async(gone, timeout=15)
        await eventually(
            lambda: (
                ""
                if all(t.currentDirection == "inactive" for t in participant.pc.getTransceivers())
                else "the page has not taken the last offer yet"
            ),
            15,
        )
    state = await page.media()
    assert len(state["transceivers"]) == AT_ONCE, state["transceivers"]
    assert len(participant.pc.getTransceivers()) == AT_ONCE
    assert_no_console_errors(page)
