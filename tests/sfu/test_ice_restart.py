"""ICE restart in place, through the server: asked by a client (Client.restart_ice), and begun by
the server itself when a client goes silent while its WebSocket lives (sfu.participant's
DEAD_PATH_TIMEOUT). Media keeps its tracks, its DTLS session and its subscriptions.

A path is killed here inside the process: the client's current ICE sockets swallow what
arrives and send nothing (tests/sfu/icerestart_scenario.py does it with iptables, in a
namespace of its own, against Chromium).
"""

from __future__ import annotations

import time
from typing import Any

from aiortc import RTCPeerConnection

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.participant import Participant
from sfu.rtc import probe
from sfu.rtc.candidates import selected_pair_addresses
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv


class _Silent:
    """A datagram transport that sends nothing (the rest is the real one's)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sendto(self, data: bytes, addr: Any = None) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def kill_path(pc: RTCPeerConnection) -> None:
    """The pair in use goes silent both ways, as a dead network would make it."""
    for protocol in probe.sockets(probe.ice_connection(pc.getTransceivers()[0].receiver.transport)):
        protocol.datagram_received = lambda data, addr: None
        protocol.transport = _Silent(protocol.transport)


def participant(server: RunningServer, client: Client) -> Participant:
    (found,) = [p for p in server.backend.participants() if p.id == client.peer_id]
    return found


async def call(make_client: MakeClient, room: str) -> tuple[Client, Client, Any]:
    alice = await make_client(room, name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    bob = await make_client(room, name="bob")
    remote = await bob.next_track()
    frame = await recv(remote.track, 10)
    assert (frame.width, frame.height) == (320, 240)
    return alice, bob, remote


async def test_a_client_restarts_ice_and_keeps_its_session(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice, bob, remote = await call(make_client, "restart")
    totals = server.backend.totals
    for client in (bob, alice):  # the subscriber (fast path out), the publisher (ingress in)
        assert client.pc is not None
        before = selected_pair_addresses(client.pc)
        assert before is not None
        assert await client.restart_ice()
        after = selected_pair_addresses(client.pc)
        assert after is not None and after.local != before.local, "a new pair, on new ports"
        for _ in range(10):
            await recv(remote.track, 5)
    assert totals.ice_restarts[("client", "in_place")] == 2
    assert len(bob.remote_tracks) == 1 and bob.ice_restarts == 1 and alice.ice_restarts == 1
    assert bob.pc is not None and bob.pc.connectionState == "connected"


async def test_the_server_restarts_ice_for_a_silent_client(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice, bob, remote = await call(make_client, "silent")
    totals = server.backend.totals
    assert alice.pc is not None
    before = selected_pair_addresses(alice.pc)

    killed = time.monotonic()
    kill_path(alice.pc)
    await eventually(lambda: "" if totals.dead_paths else "no dead path seen", timeout=10)
    detected = time.monotonic() - killed
    await eventually(
        lambda: "" if totals.ice_restarts[("server", "in_place")] else "no restart", timeout=15
    )
    (publication,) = participant(server, alice).publications.values()
    packets = publication.packets
    await eventually(lambda: "" if publication.packets > packets else "no RTP on the new pair")
    moved = time.monotonic() - killed
    # Frames from alice again at bob, through the forwarding that followed her new pair.
    while True:
        await recv(remote.track, 10)
        after = selected_pair_addresses(alice.pc)
        if after is not None and before is not None and after.local != before.local:
            break
    for _ in range(5):
        await recv(remote.track, 5)
    restored = time.monotonic() - killed
    print(
        f"silent path (after it died): seen by the server {detected:.2f} s, RTP on the new pair "
        f"{moved:.2f} s, frames decoded by the Python subscriber {restored:.2f} s"
    )
    assert alice.ice_restarts == 1 and len(bob.remote_tracks) == 1
    assert participant(server, alice).pc.connectionState == "connected"
