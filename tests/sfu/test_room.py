"""A multi-party room over real sockets: every participant receives everyone else's media."""

from __future__ import annotations

from aiortc.mediastreams import AudioStreamTrack

from sfu.client import Client, RemoteTrack
from sfu.media import TestPatternTrack
from tests.conftest import MakeClient
from tests.util import eventually, recv


def tracks_from(client: Client, kind: str) -> dict[str, RemoteTrack]:
    return {r.peer_id: r for r in client.remote_tracks.values() if r.kind == kind}


async def test_three_participants_receive_each_others_video_and_audio(
    make_client: MakeClient,
) -> None:
    clients = [await make_client("trio", name=n) for n in ("alice", "bob", "carol")]
    for client in clients:
        await client.publish(TestPatternTrack(640, 480, fps=15), AudioStreamTrack())

    for client in clients:
        others = {c.peer_id for c in clients if c is not client}

        def both_arrived(client: Client = client, others: set[str | None] = others) -> str:
            seen = {k: set(tracks_from(client, k)) for k in ("video", "audio")}
            return "" if all(s == others for s in seen.values()) else f"{client.name} has {seen}"

        await eventually(both_arrived, timeout=15)

    for client in clients:
        for peer_id, remote in tracks_from(client, "video").items():
            stamps = []
            for _ in range(3):
                frame = await recv(remote.track, 10)
                assert (frame.width, frame.height) == (640, 480), (client.name, peer_id)
                stamps.append(frame.pts)
            assert stamps == sorted(stamps) and len(set(stamps)) == 3, stamps
        for remote in tracks_from(client, "audio").values():
            frame = await recv(remote.track, 10)
            assert frame.sample_rate == 48000


async def test_leaving_ends_tracks_and_announces_it(make_client: MakeClient) -> None:
    alice = await make_client("pair", name="alice")
    bob = await make_client("pair", name="bob")
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    remote = await bob.next_track()
    assert remote.peer_id == alice.peer_id and remote.kind == "video"
    await recv(remote.track, 10)

    await alice.close()
    await eventually(lambda: "" if alice.peer_id not in bob.participants else "still listed")
    await eventually(lambda: "" if remote.ended.is_set() else "alice's track has not ended")
