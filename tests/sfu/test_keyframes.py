"""KeyframeThrottle (time passed in), and the subscription's RTP rewriting: wait for a
keyframe, shift sequence numbers and timestamps, resend on NACK."""

from __future__ import annotations

import pytest

from sfu.keyframes import KeyframeThrottle
from tests.sfu.fakes import FakePublication, header, ready_subscription


def test_an_unanswered_request_serves_later_ones() -> None:
    t = KeyframeThrottle(interval=0.25, patience=1.0)
    assert t.request(10.0) == 0.0
    assert t.request(10.1) is None  # the keyframe asked for at 10.0 has not come: it will do
    assert t.request(10.9) is None
    assert t.request(11.0) == 0.0  # no keyframe for a whole second: that request was lost
    assert (t.sent, t.suppressed) == (2, 2)


def test_after_a_keyframe_requests_are_spaced_by_the_interval() -> None:
    t = KeyframeThrottle(interval=0.25)
    assert t.request(10.0) == 0.0
    t.keyframe()
    assert t.request(10.1) == pytest.approx(0.15)  # deferred to the window's end, not dropped
    assert t.request(10.2) is None  # already due
    t.fire(10.25)
    assert t.request(10.3) is None  # the deferred one is unanswered
    t.keyframe()
    assert t.request(10.6) == 0.0
    assert (t.sent, t.received, t.suppressed) == (3, 2, 2)


def test_throttle_rejects_bad_settings() -> None:
    with pytest.raises(AssertionError):
        KeyframeThrottle(interval=0)
    with pytest.raises(AssertionError):
        KeyframeThrottle(interval=1.0, patience=0.5)


async def test_nothing_is_forwarded_before_a_keyframe() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    assert len(publication.requests) == 1  # asked for one as soon as it was ready
    publication.deliver(100, 9000, 0, b"delta")
    publication.deliver(101, 9000, 1, b"delta")
    assert sent == [] and sub.dropped == 2 and not sub.live
    assert len(publication.requests) == 3  # asked again while waiting (the throttle decides)
    publication.deliver(102, 12000, 0, b"key")
    publication.deliver(103, 12000, 1, b"rest")  # after the keyframe, everything passes
    assert sub.live and sub.current is publication.layers[0]
    (first, second, seq0, ts0, ssrc), (_, second1, seq1, ts1, _) = map(header, sent)
    assert (first, second, second1, ssrc) == (0x80, 96, 0x80 | 96, 0xABCD)
    assert (seq1 - seq0) & 0xFFFF == 1 and ts1 == ts0
    assert sent[0][12:] == b"key" and sent[1][12:] == b"rest"
    assert sub.packets == 2 and sub.payload_bytes == 7


async def test_sequence_numbers_and_timestamps_wrap() -> None:
    publication, sent = FakePublication(), list[bytes]()
    ready_subscription(publication, sent)
    publication.deliver(0xFFFF, 0xFFFFFF00, 0, b"key")
    publication.deliver(0x0000, 0x00000100, 0, b"d")
    (_, _, seq0, ts0, _), (_, _, seq1, ts1, _) = map(header, sent)
    assert (seq1 - seq0) & 0xFFFF == 1
    assert (ts1 - ts0) & 0xFFFFFFFF == 0x200


async def test_nack_resends_from_the_layer_ring_under_our_numbering() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    publication.deliver(499, 3000, 0, b"key")
    publication.layers[0].ring[500] = (500, 3000, 1, b"lost one")  # came, but not to bob
    (_, _, seq0, _, _) = header(sent[0])
    sub.on_nack((seq0 + 1) & 0xFFFF)  # the subscriber missed the packet after the keyframe
    sub.on_nack((seq0 + 7) & 0xFFFF)  # and one the ring never had
    assert len(sent) == 2 and sub.nacks == 2 and sub.retransmitted == 1
    _, second, seq, _, _ = header(sent[1])
    assert seq == (seq0 + 1) & 0xFFFF and second == 0x80 | 96 and sent[1][12:] == b"lost one"


async def test_picture_loss_asks_the_publication_and_close_detaches() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    publication.deliver(1, 1, 0, b"key")
    before = len(publication.requests)
    sub.on_picture_loss()
    assert sub.plis == 1 and len(publication.requests) == before + 1
    sub.close()
    assert publication.subscriptions == ()
    assert all(not layer.forwarders and not layer.pending for layer in publication.layers)
    publication.deliver(2, 1, 0, b"key")
    assert len(sent) == 1
