"""A long-lived subscriber's connection reuses the m-lines of forwarded tracks that ended
(sfu.participant): with publishers coming and going past it, its SDP stays the size of what it
receives, and each reused m-line carries the new track (its frames arrive; the Python client
makes it a new RemoteTrack). Prints the server's offer size and the time to get a round's tracks,
first round and last."""

from __future__ import annotations

import asyncio
import time

from sfu.client import Client, RemoteTrack
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv

PUBLISHERS = 100
AT_ONCE = 10  # publishers in the room at a time: the subscriber receives this many tracks


async def publish(make_client: MakeClient, name: str) -> Client:
    publisher = await make_client("churn", name=name)
    await publisher.publish(TestPatternTrack(64, 48, fps=10))
    return publisher


async def test_publishers_coming_and_going_leave_the_sdp_the_size_of_what_is_received(
    server: RunningServer, make_client: MakeClient
) -> None:
    bob = await make_client("churn", name="bob", decode=False)
    (participant,) = server.backend.participants()
    # (offer bytes, m-lines, seconds to get a round's tracks, seconds to see them end)
    figures: list[tuple[int, int, float, float]] = []
    for round_ in range(PUBLISHERS // AT_ONCE):
        start = time.monotonic()
        publishers = await asyncio.gather(
            *(publish(make_client, f"p{round_}.{i}") for i in range(AT_ONCE))
        )
        ids = {p.peer_id for p in publishers}

        def received(ids: set[str | None] = ids) -> list[RemoteTrack]:
            return [
                r for r in bob.remote_tracks.values() if r.peer_id in ids and not r.ended.is_set()
            ]

        await eventually(
            lambda: "" if len(received()) == AT_ONCE else f"{len(received())} tracks", 30
        )
        for remote in received():
            await recv(remote.track, 10)  # a reused m-line carries the new track's frames
        joined = time.monotonic() - start
        offer = participant.pc.localDescription.sdp
        start = time.monotonic()
        await asyncio.gather(*(publisher.close() for publisher in publishers))
        await eventually(lambda: "" if not received() else f"{len(received())} not ended", 30)
        figures.append((len(offer), offer.count("\nm="), joined, time.monotonic() - start))
        await eventually(
            lambda: (
                ""
                if all(t.currentDirection == "inactive" for t in participant.pc.getTransceivers())
                else "the subscriber has not taken the last offer yet"
            ),
            30,
        )

    for n, (size, lines, joined, left) in enumerate(figures, 1):
        print(
            f"after {n * AT_ONCE} publishers: server offer {size} bytes, {lines} m-lines; "
            f"{AT_ONCE} tracks received in {joined:.2f} s, seen to end in {left:.2f} s"
        )
    assert max(lines for _, lines, _, _ in figures) == AT_ONCE, figures
    assert figures[-1][0] < 1.2 * figures[0][0], figures
    assert len(participant.pc.getTransceivers()) == AT_ONCE
