"""Track state in the protocol, and mute: what subscribers are told of each publication (before its
track arrives, and at every change), and a muted track that stops reaching them."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import AudioStreamTrack

from sfu.client import ClientError
from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from sfu.subscription import Subscription
from tests.conftest import MakeClient
from tests.util import eventually, recv


def subscription(server: RunningServer, subscriber: str | None, track: str) -> Subscription:
    for participant in server.backend.participants():
        if participant.id == subscriber:
            return participant.subscriptions[track]
    raise AssertionError(f"no participant {subscriber}")


async def test_subscribers_learn_each_track_before_it_arrives(make_client: MakeClient) -> None:
    alice = await make_client("state", name="alice")
    bob = await make_client("state", name="bob")
    # What bob knew of each track at the moment it arrived.
    known_on_arrival: list[tuple[str, str, bool]] = []
    bob.on_track(lambda r: known_on_arrival.append((r.kind, r.source, r.muted)))
    video, audio = TestPatternTrack(160, 120, fps=15), AudioStreamTrack()
    await alice.publish(video, audio)
    await eventually(lambda: "" if len(known_on_arrival) == 2 else f"{known_on_arrival}")
    assert sorted(known_on_arrival) == [("audio", "microphone", False), ("video", "camera", False)]
    state = bob.track_states[video.id]
    assert (state.peer_id, state.kind, state.source, state.muted, state.layers) == (
        alice.peer_id,
        "video",
        "camera",
        False,
        [],
    )
    # The forwarded track is named by the publisher's own msid track id, for everyone.
    assert {r.track_id for r in bob.remote_tracks.values()} == {video.id, audio.id}

    carol = await make_client("state", name="carol")  # a late joiner is told in its turn
    await eventually(lambda: "" if len(carol.track_states) == 2 else f"{carol.track_states}")
    assert carol.track_states[audio.id].source == "microphone"
    assert alice.track_states == {}  # nobody is told of its own tracks

    await alice.close()
    await eventually(lambda: "" if not bob.track_states else f"{bob.track_states}")


async def test_a_screen_and_its_audio_are_announced_as_such(make_client: MakeClient) -> None:
    alice = await make_client("screen-state", name="alice")
    bob = await make_client("screen-state", name="bob", decode=False)
    screen, sound = TestPatternTrack(320, 240, fps=5), AudioStreamTrack()
    await alice.publish(screen, sound, source="screen")
    remotes = {r.kind: r for r in (await bob.next_track(), await bob.next_track())}
    assert (remotes["video"].source, remotes["audio"].source) == ("screen", "screen_audio")


async def test_mute_stops_forwarding_and_unmute_resumes_on_a_keyframe(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("mute", name="alice")
    bob = await make_client("mute", name="bob", decode=False)
    video, audio = TestPatternTrack(160, 120, fps=15), AudioStreamTrack()
    await alice.publish(video, audio)
    remotes = {r.kind: r for r in (await bob.next_track(), await bob.next_track())}
    await recv(remotes["video"].track)  # media flows
    sub = subscription(server, bob.peer_id, video.id)

    await alice.mute(video)
    await eventually(lambda: "" if remotes["video"].muted else "bob not told of the mute")
    # Forwarding stops: the server's counter for bob's copy of the video no longer moves.
    last = [sub.packets, 0]

    def stopped() -> str:
        if sub.packets != last[0]:
            last[:] = [sub.packets, 0]
            return f"still forwarding: {sub.packets} packets"
        last[1] += 1
        return "" if last[1] >= 50 else "watching"  # 50 polls of 10 ms: half a second

    await eventually(stopped, timeout=10)
    audio_sub = subscription(server, bob.peer_id, audio.id)
    before = audio_sub.packets
    await eventually(lambda: "" if audio_sub.packets > before + 10 else "audio stopped too")
    stopped_at = sub.packets
    await asyncio.sleep(0.5)
    assert sub.packets == stopped_at, "a muted track was forwarded"

    await alice.mute(video, False)
    await eventually(lambda: "" if not remotes["video"].muted else "bob not told of the unmute")
    # Frames from before the mute may still come (a jitter buffer holds the last one until the
    # next arrives); the first after it comes a mute's length later, and must be a keyframe.
    previous = -1
    while True:
        frame = await recv(remotes["video"].track)
        if previous >= 0 and frame.pts - previous > 90_000 // 2:
            break
        previous = frame.pts
    assert frame.is_keyframe, "forwarding resumed mid-picture"
    assert sub.packets > stopped_at
    for _ in range(5):  # and the stream goes on, decodable
        await recv(remotes["video"].track)


async def test_mute_of_a_track_not_published_is_refused(make_client: MakeClient) -> None:
    alice = await make_client("mute-unknown", name="alice")
    await alice.mute(AudioStreamTrack())
    await eventually(lambda: "" if alice.errors else "no error")
    (error,) = alice.errors
    assert isinstance(error, ClientError) and error.code == "unknown_track"


@pytest.mark.parametrize("muted", [True, False])
async def test_a_track_may_start_muted(make_client: MakeClient, muted: bool) -> None:
    alice = await make_client("start-muted", name="alice")
    bob = await make_client("start-muted", name="bob", decode=False)
    audio = AudioStreamTrack()
    await alice.publish(audio, muted=muted)
    remote = await bob.next_track()
    assert remote.muted is muted
    if not muted:
        await recv(remote.track)
        return
    await alice.mute(audio, False)
    await eventually(lambda: "" if not remote.muted else "still muted")
    await recv(remote.track)
