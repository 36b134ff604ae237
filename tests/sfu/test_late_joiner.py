"""A late joiner gets a picture at once: its subscription asks the publisher for a keyframe.

The publishers' VP8 encoders are pinned (tests/conftest.py) and the test pattern never forces a
key picture, so after the first frame the only keyframes are those the server asks for.
"""

from __future__ import annotations

import asyncio

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import recv


async def test_late_joiner_decodes_within_a_second_of_connecting(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("late", name="alice")
    await alice.publish(TestPatternTrack(640, 480, fps=30))
    await asyncio.sleep(2.0)  # alice's first keyframe is long gone

    carol = await make_client("late", name="carol")
    remote = await carol.next_track()
    frame = await recv(remote.track, 10)
    decoded_at = asyncio.get_running_loop().time()

    assert (frame.width, frame.height) == (640, 480)
    assert carol.connected_at is not None
    delay = decoded_at - carol.connected_at
    assert delay < 1.0, f"first frame {delay:.2f}s after the connection came up"
    (participant,) = [p for p in server.backend.participants() if p.id == alice.peer_id]
    (publication,) = participant.publications.values()
    assert publication.keyframes.sent >= 1, "the server never asked alice for a keyframe"
