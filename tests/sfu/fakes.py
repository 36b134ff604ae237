"""A publication made of real Layers with nothing of aiortc around them, and a real RtpOutput
whose packets land decrypted in a list: what the subscription tests drive by hand."""

from __future__ import annotations

import logging
import os
import struct
from types import SimpleNamespace
from typing import Any

from pylibsrtp import Policy, Session

from sfu.keyframes import KeyframeThrottle
from sfu.layer import Layer
from sfu.publication import Publication
from sfu.rtc.fastpath import RtpOutput
from sfu.subscription import Subscription

KEY = os.urandom(30)  # AES-128 key and salt: a profile whose keys both sessions can share


def is_key(payload: bytes) -> bool:
    return payload.startswith(b"key")


class FakePublication:
    """Just what Subscription and Layer use of a Publication; the layer logic is Publication's."""

    kind = "video"
    id = "track"
    publisher_id = "pub"
    muted = False
    closed = False
    log = logging.getLogger(__name__)
    clock_rate = 90000
    payload_type = 96
    rtx_payload_type = 97
    nack = True
    codec = SimpleNamespace(mimeType="video/VP8")

    best_layer: Any = Publication.best_layer
    layer_started: Any = Publication.layer_started
    _flowing_changed: Any = Publication._flowing_changed
    wanted: Any = Publication.wanted
    set_muted: Any = Publication.set_muted
    report: Any = Publication.report
    _check_flowing: Any = Publication._check_flowing
    _resync: Any = Publication._resync
    lean = True
    next_report = float("inf")  # report(): NACKs and loss only, no receiver reports

    def __init__(self, rids: tuple[str, ...] = (), *, keyframe_start: Any = is_key) -> None:
        self.keyframes = KeyframeThrottle(0.15)
        self.keyframe_start = keyframe_start
        self.simulcast = len(rids) > 1
        self.rewrite_vp8 = self.simulcast and keyframe_start is not is_key
        names: tuple[str | None, ...] = rids if self.simulcast else (None,)
        ranks = {"l": 0, "m": 1, "h": 2}
        me: Any = self
        self.layers = tuple(Layer(me, ranks[r] if r else 0, r) for r in names)
        self.subscriptions: tuple[Subscription, ...] = ()
        self.flowing: tuple[int, ...] = ()
        self.requests: list[int] = []  # layer masks asked for
        self.nacks: list[tuple[int, list[int]]] = []
        self.changes = 0
        self.resyncs = 0

    def add(self, sub: Subscription) -> None:
        self.subscriptions = (*self.subscriptions, sub)

    def remove(self, sub: Subscription) -> None:
        Publication.remove(self, sub)  # type: ignore[arg-type]

    def layers_changed(self) -> None:
        self.changes += 1

    def request_keyframe(self, layer: Layer | None = None) -> None:
        self.requests.append(layer.bit if layer is not None else 0)

    def start(self, sub: Subscription) -> None:
        self.request_keyframe(sub.target)

    def send_nack(self, ssrc: int, lost: list[int]) -> None:
        self.nacks.append((ssrc, lost))

    def layer(self, rid: str | None = None) -> Layer:
        return next(layer for layer in self.layers if layer.rid == rid)

    def deliver(
        self, seq: int, ts: int, marker: int, payload: bytes, rid: str | None = None
    ) -> None:
        """A media packet of a layer, as the ingress hands it over."""
        self.layer(rid).on_lean(96, marker, seq, ts, payload)


def ready_subscription(publication: FakePublication, sent: list[bytes]) -> Subscription:
    """A subscription with a real RtpOutput whose packets land, decrypted, in `sent`."""
    sub = Subscription(publication, "sub")  # type: ignore[arg-type]
    tx_policy = Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    tx_policy.allow_repeat_tx = True  # as aiortc sets it: NACKed packets go out again
    tx = Session(policy=tx_policy)

    def unprotect(data: bytes) -> bytes:
        # A session per packet: a retransmission would fail a session's replay check.
        return Session(policy=Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND)).unprotect(data)

    wire = SimpleNamespace(sendto=lambda data, addr: sent.append(unprotect(data)))
    pair = SimpleNamespace(protocol=SimpleNamespace(transport=wire), remote_addr=("::1", 9))
    ice = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
    dtls = SimpleNamespace(state="connected", _tx_srtp=tx, transport=ice)
    output = RtpOutput(SimpleNamespace(transport=dtls, _ssrc=0xABCD), 96)  # type: ignore[arg-type]
    assert output.bind()
    # What sender_started does once the subscriber's connection is up (it needs aiortc).
    sub.ready_with(output)
    return sub


def header(packet: bytes) -> tuple[int, int, int, int, int]:
    first, second, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    return first, second, seq, ts, ssrc
