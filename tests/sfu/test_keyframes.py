"""KeyframeThrottle (time passed in), and the subscription's RTP rewriting: wait for a
keyframe, shift sequence numbers and timestamps, resend on NACK."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from pylibsrtp import Policy, Session

from sfu.keyframes import KeyframeThrottle
from sfu.rtc.fastpath import RtpOutput
from sfu.subscription import Subscription


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


class FakePublication:
    """Just what a Subscription reads of its publication, and its hot loop (`deliver`)."""

    kind = "video"
    publisher_id = "pub"
    log = logging.getLogger(__name__)

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.pending: list[Subscription] = []
        self.forwarders: list[Callable[[int, int, int, bytes], bool]] = []
        self.waiting = 0
        self.keyframe_requests = 0
        self.ring: dict[int, tuple[int, int, int, bytes]] = {}

    def add(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)
        self.pending.append(sub)

    def go_live(self, sub: Subscription) -> None:
        self.pending.remove(sub)
        self.forwarders.append(sub.forward)

    def remove(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub)
        if sub in self.pending:
            self.pending.remove(sub)
        self.forwarders = [f for f in self.forwarders if f is not sub.forward]

    def deliver(self, seq: int, ts: int, marker: int, payload: bytes, keyframe: bool) -> None:
        for forward in list(self.forwarders):
            forward(seq, ts, marker, payload)
        for sub in list(self.pending):
            sub.try_start(seq, ts, marker, payload, keyframe)

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1

    def start(self, sub: Subscription) -> None:
        self.request_keyframe()

    def packet(self, seq: int) -> tuple[int, int, int, bytes] | None:
        return self.ring.get(seq)


KEY = os.urandom(30)  # AES-128 key and salt: a profile whose keys both sessions can share


def ready_subscription(publication: FakePublication, sent: list[bytes]) -> Subscription:
    """A subscription with a real RtpOutput whose packets land, decrypted, in `sent`."""
    sub = Subscription(publication, "sub")  # type: ignore[arg-type]
    tx_policy = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    tx_policy.allow_repeat_tx = True  # as aiortc sets it: NACKed packets go out again
    tx = Session(policy=tx_policy)
    rx = Session(policy=Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    wire = SimpleNamespace(sendto=lambda data, addr: sent.append(rx.unprotect(data)))
    pair = SimpleNamespace(protocol=SimpleNamespace(transport=wire), remote_addr=("::1", 9))
    ice = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
    dtls = SimpleNamespace(state="connected", _tx_srtp=tx, transport=ice)
    output = RtpOutput(SimpleNamespace(transport=dtls, _ssrc=0xABCD), 96)  # type: ignore[arg-type]
    assert output.bind()
    # What _on_sender_started does once the subscriber's connection is up (it needs aiortc).
    sub._output, sub.ready = output, True
    publication.waiting += 1
    return sub


def header(packet: bytes) -> tuple[int, int, int, int, int]:
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    return first, second, seq, ts, ssrc


async def test_nothing_is_forwarded_before_a_keyframe() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    publication.deliver(100, 9000, 0, b"delta", keyframe=False)
    publication.deliver(101, 9000, 1, b"delta", keyframe=False)
    assert sent == [] and sub.dropped == 2 and not sub.live
    assert publication.keyframe_requests == 2  # asked again while waiting (the throttle decides)
    publication.deliver(102, 12000, 0, b"key", keyframe=True)
    publication.deliver(
        103, 12000, 1, b"rest", keyframe=False
    )  # after the keyframe, everything passes
    assert sub.live and publication.waiting == 0
    (first, second, seq0, ts0, ssrc), (_, second1, seq1, ts1, _) = map(header, sent)
    assert (first, second, second1, ssrc) == (0x80, 96, 0x80 | 96, 0xABCD)
    assert (seq1 - seq0) & 0xFFFF == 1 and ts1 == ts0
    assert sent[0][12:] == b"key" and sent[1][12:] == b"rest"
    assert sub.packets == 2 and sub.payload_bytes == 7


async def test_sequence_numbers_and_timestamps_wrap() -> None:
    publication, sent = FakePublication(), list[bytes]()
    ready_subscription(publication, sent)
    publication.deliver(0xFFFF, 0xFFFFFF00, 0, b"k", keyframe=True)
    publication.deliver(0x0000, 0x00000100, 0, b"d", keyframe=False)
    (_, _, seq0, ts0, _), (_, _, seq1, ts1, _) = map(header, sent)
    assert (seq1 - seq0) & 0xFFFF == 1
    assert (ts1 - ts0) & 0xFFFFFFFF == 0x200


async def test_nack_resends_from_the_publication_ring_under_our_numbering() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    publication.ring[500] = (500, 3000, 1, b"lost one")
    publication.deliver(499, 3000, 0, b"key", keyframe=True)
    (_, _, seq0, _, _) = header(sent[0])
    sub.on_nack((seq0 + 1) & 0xFFFF)  # the subscriber missed the packet after the keyframe
    sub.on_nack((seq0 + 7) & 0xFFFF)  # and one the ring never had
    assert len(sent) == 2 and sub.nacks == 2 and sub.retransmitted == 1
    _, second, seq, _, _ = header(sent[1])
    assert seq == (seq0 + 1) & 0xFFFF and second == 0x80 | 96 and sent[1][12:] == b"lost one"


async def test_picture_loss_asks_the_publication_and_close_detaches() -> None:
    publication, sent = FakePublication(), list[bytes]()
    sub = ready_subscription(publication, sent)
    sub.on_picture_loss()
    assert (sub.plis, publication.keyframe_requests) == (1, 1)
    sub.close()
    assert publication.subscriptions == [] and publication.waiting == 0
    publication.deliver(1, 1, 0, b"k", keyframe=True)
    assert sent == []
