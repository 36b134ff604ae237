"""Subscription and Layer, driven by hand: a subscriber forwarded one simulcast layer at a time.

Real Layers, a real RtpOutput (its packets decrypted back into a list) and the Publication's own
layer logic (tests.sfu.fakes): what a subscriber would see on the wire, packet by packet.
"""

from __future__ import annotations

import itertools

from sfu.payload import vp8_keyframe_start, vp8_picture_ids
from sfu.publication import Publication
from tests.sfu.fakes import FakePublication, header, ready_subscription
from tests.sfu.test_continuity import vp8

L, M, H = 1, 2, 4  # keyframe-request masks


class Source:
    """One simulcast layer of a publisher: its own SSRC's numbering, timestamps and pictures."""

    def __init__(self, publication: FakePublication, rid: str, seq: int, ts: int, pid: int):
        self.publication, self.rid = publication, rid
        self.seq, self.ts, self.pid, self.tl0 = seq, ts, pid, 0

    def frame(self, *, key: bool = False, packets: int = 2) -> None:
        """One frame, in `packets` packets; the clock moves on by a frame at 30 fps."""
        self.tl0 = (self.tl0 + 1) & 0xFF
        for i in range(packets):
            payload = vp8(self.pid, self.tl0, key=key)
            if i:
                payload = bytes([payload[0] & ~0x10]) + payload[1:]  # not a partition start
            self.publication.deliver(self.seq, self.ts, int(i == packets - 1), payload, self.rid)
            self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        self.pid = (self.pid + 1) & 0x7FFF


def simulcast() -> tuple[FakePublication, dict[str, Source]]:
    pub = FakePublication(("l", "m", "h"), keyframe_start=vp8_keyframe_start)
    sources = {
        "l": Source(pub, "l", 100, 1_000_000, 10),
        "m": Source(pub, "m", 40_000, 7_000_000, 20_000),
        "h": Source(pub, "h", 65_500, 4_000_000_000, 32_700),  # about to wrap
    }
    return pub, sources


def on_the_wire(sent: list[bytes]) -> list[tuple[int, int, int, int, int]]:
    """(seq, timestamp, ssrc, PictureID, TL0PICIDX) of each packet sent."""
    out = []
    for packet in sent:
        _, _, seq, ts, ssrc = header(packet)
        ids = vp8_picture_ids(packet[12:])
        assert ids is not None
        out.append((seq, ts, ssrc, ids[0], ids[2]))
    return out


def assert_one_stream(sent: list[bytes]) -> None:
    """Consecutive sequence numbers, one SSRC, timestamps and pictures never going back, and
    each new picture one more than the last."""
    wire = on_the_wire(sent)
    for (seq0, ts0, ssrc0, pid0, _), (seq1, ts1, ssrc1, pid1, _) in itertools.pairwise(wire):
        assert (seq1 - seq0) & 0xFFFF == 1, wire
        assert ssrc1 == ssrc0
        assert 0 <= (ts1 - ts0) & 0xFFFFFFFF <= 9000, wire  # at most a few frames apart
        assert (pid1 - pid0) & 0x7FFF in (0, 1), wire


async def test_a_switch_happens_on_a_keyframe_of_the_target_and_the_stream_goes_on() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    for source in src.values():
        source.frame(key=True)  # every layer flows
    assert pub.flowing == (0, 1, 2)
    sub = ready_subscription(pub, sent)
    sub.set_preferred(0)
    assert sub.target is pub.layer("l") and pub.requests[-1] == L
    src["l"].frame(key=True)
    src["m"].frame()
    src["l"].frame()
    assert sub.current is pub.layer("l") and len(sent) == 4

    changes = pub.changes
    sub.set_preferred(2)
    assert sub.target is pub.layer("h") and pub.requests[-1] == H
    assert pub.changes == changes + 1  # what it wants changed: the listeners hear of it
    src["h"].frame()  # not a keyframe: nothing of h yet, l goes on
    src["l"].frame()
    assert sub.current is pub.layer("l") and len(sent) == 6
    src["h"].frame(key=True, packets=3)  # the switch
    assert sub.current is pub.layer("h") and sub.switches == 1 and len(sent) == 9
    src["l"].frame()  # the old layer stopped at the switch
    src["h"].frame()
    src["h"].frame()
    assert len(sent) == 13 and pub.layer("l").forwarders == ()
    assert all(bytes(p[12:]).endswith(b"vp8") for p in sent)
    assert_one_stream(sent)
    # The keyframe's picture follows l's last; TL0PICIDX too.
    wire = on_the_wire(sent)
    assert wire[6][3] == (wire[5][3] + 1) & 0x7FFF and wire[6][4] == (wire[5][4] + 1) & 0xFF

    sub.set_preferred(1)  # and down again, through the wrap of h's numbering
    src["m"].frame(key=True)
    src["h"].frame()
    src["m"].frame()
    assert sub.current is pub.layer("m") and sub.switches == 2 and len(sent) == 17
    assert_one_stream(sent)


async def test_nacks_map_back_to_the_layer_and_numbering_of_their_time() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    sub = ready_subscription(pub, sent)
    sub.set_preferred(0)
    src["l"].frame(key=True)
    src["l"].frame()
    sub.set_preferred(2)
    src["h"].frame(key=True)
    src["h"].frame()
    before = list(sent)
    l_packet, h_packet = before[2], before[5]
    for packet in (l_packet, h_packet):
        sub.on_nack(header(packet)[2])
    assert sub.retransmitted == 2 and sent[-2:] == [l_packet, h_packet]  # byte for byte
    sub.on_nack((header(before[0])[2] - 1) & 0xFFFF)  # before the first span: nothing
    assert sub.retransmitted == 2 and sub.nacks == 3


async def test_a_layer_not_flowing_gives_the_best_one_that_is_then_the_one_asked_for() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    src["l"].frame(key=True)
    src["m"].frame(key=True)
    sub = ready_subscription(pub, sent)  # auto: the highest flowing
    assert sub.preferred is None and sub.desired == 2 and sub.target is pub.layer("m")
    sub.set_preferred(2)  # h is not flowing yet: m it is
    assert sub.target is pub.layer("m")
    src["m"].frame(key=True)
    assert sub.current is pub.layer("m")
    src["h"].frame()  # h starts flowing: the subscription waits for its keyframe
    assert pub.flowing == (0, 1, 2) and sub.target is pub.layer("h") and pub.requests[-1] == H
    src["h"].frame(key=True)
    assert sub.current is pub.layer("h")
    # h stops (a publisher that cut it): the subscription goes down to the best that flows.
    pub.layer("l").last_arrival = pub.layer("m").last_arrival = 1e12
    Publication._check_flowing(pub, 1e12)  # type: ignore[arg-type]
    assert list(pub.flowing) == [0, 1] and sub.target is pub.layer("m")
    assert pub.wanted() == {2}  # still what it asked for: the publisher should send h again
    src["m"].frame(key=True)
    assert sub.current is pub.layer("m") and sub.switches == 2
    assert_one_stream(sent)


async def test_a_plain_stream_ignores_layers() -> None:
    pub = FakePublication()
    sent: list[bytes] = []
    sub = ready_subscription(pub, sent)
    sub.set_preferred(0)
    sub.set_auto_layer(1)
    assert sub.target is pub.layers[0]
    pub.deliver(1, 90, 0, b"key")
    assert sub.current is pub.layers[0] and sent and sent[0][12:] == b"key"
    assert sub.forward != sub._output.forward_vp8  # type: ignore[union-attr]  # no rewriting


async def test_a_mute_stops_forwarding_and_the_stream_goes_on_from_a_keyframe() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    for source in src.values():
        source.frame(key=True)
    sub = ready_subscription(pub, sent)
    src["h"].frame(key=True)
    src["h"].frame()
    assert sub.live and len(sent) == 4
    requests = len(pub.requests)
    assert pub.set_muted(True) and not pub.set_muted(True)
    for _ in range(5):  # the publisher goes on sending (black frames, say): none goes out
        src["h"].frame()
    src["h"].frame(key=True)
    assert len(sent) == 4
    sub.set_preferred(1)  # a layer asked for while muted starts nothing either
    src["m"].frame(key=True)
    assert len(sent) == 4 and sub.target is pub.layer("m")
    assert len(pub.requests) == requests  # and asks for no keyframe

    assert pub.set_muted(False)
    assert pub.requests[-1] == M  # a keyframe of the layer to forward, asked for at once
    src["m"].frame()  # not a keyframe: still nothing
    assert len(sent) == 4
    src["m"].frame(key=True)
    src["m"].frame()
    assert len(sent) == 8
    assert_one_stream(sent)  # numbering goes on from the last packet before the mute
    assert sub.current is pub.layer("m") and sub.switches == 1


async def test_the_old_layer_stops_at_the_first_packet_of_the_new_keyframe() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    sub = ready_subscription(pub, sent)
    sub.set_preferred(0)
    src["l"].frame(key=True)
    sub.set_preferred(2)
    h, low = src["h"], src["l"]
    pub.deliver(h.seq, h.ts, 0, vp8(h.pid, 1, key=True), "h")  # a keyframe begins
    assert sub.current is pub.layer("h") and len(sent) == 3
    low.frame()  # l's next frame: not forwarded any more
    payload = vp8(h.pid, 1, key=True)
    pub.deliver(h.seq + 1, h.ts, 1, bytes([payload[0] & ~0x10]) + payload[1:], "h")
    assert len(sent) == 4
    assert_one_stream(sent)


async def test_a_switch_waits_for_the_new_layers_clock_pair() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    sub = ready_subscription(pub, sent)
    sub.set_preferred(0)
    src["l"].frame(key=True)
    src["h"].frame()  # h flows, but has sent no sender report yet
    pub.layer("l").sender_report = (10 << 32, 1_000_000)
    sub.set_preferred(2)
    requests = len(pub.requests)
    src["h"].frame(key=True)  # without h's clock pair: no switch, no request
    src["h"].frame()
    assert sub.current is pub.layer("l") and len(pub.requests) == requests
    # Its clock pair: h's frame before the keyframe was captured with l's last one.
    pub.layer("h").sender_report = (10 << 32, 4_000_000_000 + 9000)
    src["h"].frame()  # now it asks for a keyframe...
    assert pub.requests[-1] == H
    src["h"].frame(key=True)  # ...and switches on it
    assert sub.current is pub.layer("h")
    assert_one_stream(sent)


async def test_a_loss_the_publisher_cannot_repair_waits_for_the_next_keyframe() -> None:
    pub = FakePublication()
    layer = pub.layers[0]
    layer.latch(0x1234, 96, 1)  # the lean path's reception state: NACKs and loss
    sent: list[bytes] = []
    sub = ready_subscription(pub, sent)
    for seq in (1, 2, 3, 5, 6):  # 4 is lost on the way in
        pub.deliver(seq, 90 * seq, 1, b"key" if seq == 1 else b"delta")
    assert len(sent) == 5 and pub.nacks == [(0x1234, [4])]
    for tick in (0.0, 0.25):  # asked for again: not given up yet
        pub.report(tick)
        assert pub.nacks[-1] == (0x1234, [4]) and pub.resyncs == 0 and layer.forwarders
    requests = len(pub.requests)
    pub.report(0.5)  # never came: what follows cannot be decoded
    assert pub.resyncs == 1 and len(pub.requests) == requests + 1  # a keyframe asked for
    assert sub in layer.pending and not layer.forwarders
    pub.deliver(7, 630, 1, b"delta")  # waits for the keyframe
    assert len(sent) == 5
    pub.deliver(8, 720, 1, b"key")
    pub.deliver(9, 810, 1, b"delta")
    assert len(sent) == 7 and sent[5][12:] == b"key"
    seqs = [header(packet)[2] for packet in sent]
    # The subscriber sees the hole the publisher made (its NACK gets nothing) and no other: the
    # stream goes on from the last packet sent.
    assert [(b - a) & 0xFFFF for a, b in itertools.pairwise(seqs)] == [1, 1, 2, 1, 1, 1]
    pub.report(0.75)  # nothing new lost: no second resync
    assert pub.resyncs == 1


async def test_back_to_the_layer_a_resync_stopped_it_waits_for_its_keyframe() -> None:
    pub, src = simulcast()
    sent: list[bytes] = []
    src["m"].frame(key=True)
    sub = ready_subscription(pub, sent)  # auto: m, the highest flowing
    src["m"].frame(key=True)
    assert sub.current is pub.layer("m")
    src["h"].frame()  # h starts: the subscription waits for its keyframe, m goes on
    assert sub.target is pub.layer("h")
    sub.resync()  # m lost what nobody can resend (after an outage): forwarding stops
    assert not pub.layer("m").forwarders
    # h stops before its keyframe came (a publisher cutting its top layer after the outage).
    pub.layer("m").last_arrival = 1e12
    Publication._check_flowing(pub, 1e12)  # type: ignore[arg-type]
    assert sub.target is sub.current is pub.layer("m")
    assert sub in pub.layer("m").pending and pub.requests[-1] == M
    before = len(sent)
    src["m"].frame()
    assert len(sent) == before, "nothing before the keyframe"
    src["m"].frame(key=True)
    src["m"].frame()
    assert len(sent) == before + 4 and pub.layer("m").forwarders
    assert_one_stream(sent)
