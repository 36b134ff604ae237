"""Loss between the server and a subscriber is repaired by NACK, from the publication's ring.

A lost video packet that is never resent stalls aiortc's jitter buffer (it waits at the hole
until it overflows, seconds later): the subscriber would stop decoding. Here every 15th packet
the subscriber receives is dropped before its SRTP layer, as the network would; it must
keep decoding, and the server must have resent what was asked for (under the same sequence
number: the subscriber's SRTP never saw the lost original). A loss nobody repairs holds the
Python client's jitter buffer only briefly (sfu.rtc.jitter).
"""

from __future__ import annotations

import asyncio
import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest
from aiortc.mediastreams import AudioStreamTrack

from sfu.media import TestPatternTrack
from sfu.rtc import fastpath
from sfu.rtc import probe as rtc_probe
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import eventually, recv


def drop_every(dtls: Any, n: int) -> list[int]:
    """Drop every n-th SRTP packet arriving on this DTLS transport, as the network would: as
    the socket hands it over, before anything else sees it; returns the (encrypted, so still
    readable) sequence numbers dropped.

    Fault injection for tests: the datagram callback of each of the ICE connection's sockets is
    wrapped (an aioice internal).
    """
    dropped: list[int] = []
    count = 0

    def lossy(receive: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            nonlocal count
            if len(data) > 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
                count += 1
                if count % n == 0 and count > 30:  # let the first keyframe through whole
                    dropped.append(int.from_bytes(data[2:4], "big"))
                    return
            receive(data, addr)

        return datagram_received

    for protocol in rtc_probe.sockets(rtc_probe.ice_connection(dtls)):
        protocol.datagram_received = lossy(protocol.datagram_received)
    return dropped


async def test_a_lossy_subscriber_keeps_decoding(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("loss", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    bob = await make_client("loss", name="bob")
    remote = await bob.next_track()
    assert bob.pc is not None
    (transceiver,) = [t for t in bob.pc.getTransceivers() if t.receiver.track is remote.track]
    dropped = drop_every(transceiver.receiver.transport, 15)

    frames = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4.0
    while loop.time() < deadline:
        try:
            await recv(remote.track, 3)  # a stall (no retransmissions) fails here
        except TimeoutError:
            subs = [s for p in server.backend.participants() for s in p.subscriptions.values()]
            raise AssertionError(
                f"stalled after {frames} frames; dropped {dropped[:10]}; "
                f"nacks {[s.nacks for s in subs]} resent {[s.retransmitted for s in subs]} "
                f"live {[s.live for s in subs]}"
            ) from None
        frames += 1

    assert len(dropped) > 10, dropped
    (subscription,) = [s for p in server.backend.participants() for s in p.subscriptions.values()]
    assert subscription.nacks > 0 and subscription.retransmitted > 0
    assert frames > 60, f"only {frames} frames in 4 s with {len(dropped)} packets dropped"


async def test_loss_from_the_publisher_is_repaired_by_its_retransmissions(
    server: RunningServer, make_client: MakeClient
) -> None:
    # Lost on the way in: the server NACKs the publisher (sfu.inbound notes the gap), whose
    # RTX retransmission the publication unwraps and forwards under the lost number.
    alice = await make_client("loss-in", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    (publisher,) = server.backend.participants()
    dropped = drop_every(publisher.pc.getTransceivers()[0].receiver.transport, 15)
    bob = await make_client("loss-in", name="bob")
    remote = await bob.next_track()

    frames = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4.0
    while loop.time() < deadline:
        await recv(remote.track, 3)
        frames += 1
    assert len(dropped) > 10, dropped
    (publication,) = publisher.publications.values()
    assert frames > 60, f"only {frames} frames in 4 s with {len(dropped)} packets dropped"
    assert publication.retransmissions > 0


async def test_only_codecs_negotiated_with_nack_get_nacks(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("nack-kinds", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=15), AudioStreamTrack())
    (publisher,) = server.backend.participants()
    await eventually(lambda: "" if len(publisher.publications) == 2 else "not published yet")
    kinds = {pub.kind: pub.nack for pub in publisher.publications.values()}
    assert kinds == {"video": True, "audio": False}  # aiortc offers no NACK for Opus


async def test_a_retransmission_nobody_asked_for_is_not_forwarded(
    server: RunningServer, make_client: MakeClient
) -> None:
    # Chromium probes bandwidth by resending old packets on its RTX stream. One the ring still
    # holds is a duplicate; one it has dropped must not reach subscribers either: a packet that
    # old would look like a restart of the stream to their jitter buffers.
    alice = await make_client("probe", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=30))
    bob = await make_client("probe", name="bob")
    remote = await bob.next_track()
    await recv(remote.track, 5)
    (publisher,) = [p for p in server.backend.participants() if p.id == alice.peer_id]
    (publication,) = publisher.publications.values()
    assert publication.lean and publication.layers[0].stream is not None
    assert alice.pc is not None
    (sender,) = [s for s in alice.pc.getSenders() if s.track and s.track.kind == "video"]
    assert publication.rtx_payload_type is not None
    old = (publication.layers[0].stream.max_seq - 3000) & 0xFFFF  # long gone from the ring
    before = publication.retransmissions
    for i, seq in enumerate((old, (old + 1) & 0xFFFF)):
        probe = struct.pack(
            "!BBHII", 0x80, publication.rtx_payload_type, 40000 + i, 0, fastpath.rtx_ssrc(sender)
        )
        await rtc_probe.send_rtp(sender.transport, probe + seq.to_bytes(2, "big") + b"\x10stale")
    for _ in range(15):  # bob keeps decoding, and nothing of the probes was forwarded
        await recv(remote.track, 3)
    assert publication.retransmissions == before
    assert publication.layers[0].stream.received > 0 and not publication.layers[0].stream.missing


def drop_unrepairable(transceiver: Any, every: int) -> list[int]:
    """Drop every `every`-th media packet of this subscriber's forwarded track, and again each
    time the server resends it (under its own sequence number: sfu.rtc.fastpath): losses nothing
    repairs. Returns the sequence numbers lost."""
    codec = fastpath.negotiated_codec(transceiver)
    assert codec is not None
    dropped: list[int] = []
    count = 0

    def lossy(receive: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            nonlocal count
            if len(data) > 12 and 127 < data[0] < 192 and data[1] & 0x7F == codec.payloadType:
                seq = int.from_bytes(data[2:4], "big")
                if seq in dropped:
                    return  # the retransmission
                count += 1
                if count % every == 0:
                    dropped.append(seq)
                    return
            receive(data, addr)

        return datagram_received

    for protocol in rtc_probe.sockets(rtc_probe.ice_connection(transceiver.receiver.transport)):
        protocol.datagram_received = lossy(protocol.datagram_received)
    return dropped


@pytest.mark.parametrize("decode", [False, True])
async def test_a_loss_nobody_repairs_holds_a_python_subscriber_briefly(
    server: RunningServer, make_client: MakeClient, decode: bool
) -> None:
    # aiortc's jitter buffer alone would wait at the hole until 512 packets piled up behind it
    # (seconds); sfu.rtc.jitter skips to a keyframe, asked for by PLI.
    alice = await make_client("unrepaired", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=30))
    bob = await make_client("unrepaired", name="bob", decode=decode)
    remote = await bob.next_track()
    await recv(remote.track, 5)
    assert bob.pc is not None
    (transceiver,) = [t for t in bob.pc.getTransceivers() if t.receiver.track is remote.track]
    dropped = drop_unrepairable(transceiver, 150)

    loop = asyncio.get_running_loop()
    arrivals = [loop.time()]
    while arrivals[-1] - arrivals[0] < 6.0:
        await recv(remote.track, 5)  # aiortc alone: stalled here
        arrivals.append(loop.time())
    longest = max(b - a for a, b in itertools.pairwise(arrivals))
    print(f"{len(dropped)} losses not repaired; longest wait for a frame {longest:.2f} s")
    assert len(dropped) >= 2 and len(arrivals) > 60
