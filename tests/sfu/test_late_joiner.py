"""A late joiner gets a picture at once: its subscription asks the publisher for a keyframe.

The publishers' VP8 encoders are pinned (tests/conftest.py) and the test pattern never forces a
key picture, so after the first frame the only keyframes are those the server asks for.
"""

from __future__ import annotations

import asyncio

import pytest

from sfu import publication as publication_module
from sfu.layer import RING_SIZE
from sfu.media import TestPatternTrack
from sfu.publication import Publication
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


async def test_a_joiner_right_after_a_keyframe_starts_on_it_with_no_new_request(
    server: RunningServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Generous bounds stand for "right after": the keyframe carol's join asked for is replayed
    # from the ring to dave, with what followed it, instead of a new request to alice.
    monkeypatch.setattr(publication_module, "REPLAY_MAX_AGE", 30.0)
    monkeypatch.setattr(publication_module, "REPLAY_MAX_PACKETS", RING_SIZE)
    publication = await publish_and_subscribe(server, make_client, "replay")
    requests, replays = publication.keyframes.sent, publication.replays

    dave = await make_client("replay", name="dave")
    remote = await dave.next_track()
    frame = await recv(remote.track, 10)
    assert (frame.width, frame.height) == (320, 240)
    assert publication.replays == replays + 1
    assert publication.keyframes.sent == requests, "dave's join asked alice for a keyframe"
    for _ in range(10):  # past the replayed burst, into live packets: decoding goes on
        await recv(remote.track, 3)


async def test_an_old_keyframe_is_not_replayed(
    server: RunningServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publication_module, "REPLAY_MAX_AGE", 0.0)
    publication = await publish_and_subscribe(server, make_client, "no-replay")
    requests = publication.keyframes.sent
    dave = await make_client("no-replay", name="dave")
    await recv((await dave.next_track()).track, 10)
    assert publication.replays == 0 and publication.keyframes.sent > requests


async def publish_and_subscribe(
    server: RunningServer, make_client: MakeClient, room: str
) -> Publication:
    """alice publishes, carol decodes her (her join asked for a keyframe): alice's publication."""
    alice = await make_client(room, name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    await asyncio.sleep(1.0)
    carol = await make_client(room, name="carol")
    await recv((await carol.next_track()).track, 10)
    (participant,) = [p for p in server.backend.participants() if p.id == alice.peer_id]
    (publication,) = participant.publications.values()
    return publication
