"""Micro-benchmark of the forwarding hot path: what one forwarded RTP packet costs in Python.

    python -m loadtest.bench_forward [--subscribers 50] [--packets 2000] [--simulcast]
        [--abs-send-time]
        [--json PATH]

Runs the real code (Publication's loop over the live subscriptions' RtpOutput.forward: header
rewrite, in-place SRTP protect with AES-256-GCM as aiortc negotiates it, sendto on a duplicate
of an aioice StunProtocol's socket) for N subscriptions of one fan-out, on sockets that this
process drains itself, so the figure excludes what a whole server adds (receiving, the
publisher's SRTP, RTCP, the kernel waking the receivers): the narrow figure beside `make
bench`'s whole-server one, for a change to sfu/subscription.py or sfu/rtc/fastpath.py. Prints CPU
µs per forwarded packet, user and system apart. It asserts only that every packet went out.

Stand-ins replace what RtpOutput reads of aiortc (the sender's DTLS transport, its SRTP session
and the nominated ICE pair): tests/loadtest/test_bench_forward.py runs it, so that a change to
those shapes breaks it there, not silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import resource
import socket
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from aioice.ice import StunProtocol
from pylibsrtp import Policy, Session

from sfu.keyframes import KeyframeThrottle
from sfu.layer import Layer
from sfu.payload import vp8_keyframe_start
from sfu.rtc.fastpath import RtpOutput, stamp_send_time
from sfu.subscription import Subscription

from . import options
from .report import emit, environment, environment_line


class BenchPublication:
    """What a Subscription and its Layer read of a Publication: one layer, the real sfu.layer.
    `simulcast`: its subscriptions rewrite the VP8 picture numbering (forward_vp8)."""

    kind = "video"
    id = "bench-video"
    publisher_id = "bench"
    muted = False
    log = logging.getLogger(__name__)
    payload_type, rtx_payload_type, clock_rate, nack = 96, 97, 90000, False

    def __init__(self, simulcast: bool) -> None:
        self.simulcast = self.rewrite_vp8 = simulcast
        self.keyframes = KeyframeThrottle(0.15)
        self.keyframe_start = vp8_keyframe_start
        self.subscriptions: list[Subscription] = []
        me: Any = self
        self.layer = Layer(me, 0, "l" if simulcast else None)

    def add(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)

    def remove(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub)

    def best_layer(self, desired: int) -> Layer:
        return self.layer

    def layer_started(self, layer: Layer) -> None:
        layer.flowing = True

    def layers_changed(self) -> None:
        pass

    def request_keyframe(self, layer: Layer | None = None) -> None:
        pass

    def start(self, sub: Subscription) -> None:
        pass


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


# A VP8 payload: descriptor with PictureID (15 bits) and TL0PICIDX, then the frame.
_VP8 = bytes([0x90, 0xC0, 0x80 | 0x12, 0x34, 7, 0x01])


async def live_subscriptions(
    publication: Any,
    count: int,
    payload_type: int,
    first: tuple[int, bytes],
    abs_send_time: int | None = None,
) -> tuple[asyncio.DatagramTransport, list[socket.socket]]:
    """`count` Subscriptions to `publication`, each with a real RtpOutput sending to a socket of
    its own (which drain() empties), started on the packet `first` (seq, payload): live. With
    `abs_send_time` (an extension id), each packet carries it, as video to a subscriber that
    negotiated it."""
    loop = asyncio.get_running_loop()
    no_connection: Any = SimpleNamespace(protocol_lost=lambda protocol: None)  # it only sends here
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: StunProtocol(no_connection), local_addr=("127.0.0.1", 0)
    )
    sinks = []
    for _ in range(count):
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        sinks.append(sink)
        policy = Policy(
            key=os.urandom(44),
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
        )
        policy.allow_repeat_tx = True  # as aiortc sets it: NACKed packets go out again
        # Stand-ins for the sender -> DTLS -> ICE -> aioice pair chain RtpOutput walks.
        pair = SimpleNamespace(protocol=protocol, remote_addr=sink.getsockname())
        dtls = SimpleNamespace(
            state="connected",
            _tx_srtp=Session(policy=policy),
            transport=SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair})),
        )
        sender = SimpleNamespace(transport=dtls, _ssrc=random.getrandbits(32))
        output = RtpOutput(sender, payload_type, abs_send_time)  # type: ignore[arg-type]
        assert output.bind()
        sub = Subscription(publication, "bench")
        sub.ready_with(output)
    # A keyframe through the layer, as in the server: every subscription starts on it, live.
    publication.layer.on_media(first[0], 0, 0, first[1], time.monotonic())
    return transport, sinks


def drain(sinks: list[socket.socket]) -> None:
    for sink in sinks:
        try:
            while True:
                sink.recv(2048)
        except BlockingIOError:
            pass


async def run(
    subscribers: int, packets: int, simulcast: bool = False, abs_send_time: bool = False
) -> dict[str, float]:
    publication = BenchPublication(simulcast)
    # Started on a keyframe, just before the first packet: live from then on.
    transport, sinks = await live_subscriptions(
        publication, subscribers, 96, (0, _VP8[:5] + b"\x00"), 3 if abs_send_time else None
    )
    payload = _VP8 + os.urandom(994)
    subs = tuple(publication.subscriptions)
    forwarders = publication.layer.forwarders

    u0, s0 = _cpu()
    for i in range(packets):
        seq, ts = (i + 1) & 0xFFFF, (i // 4 * 3000) & 0xFFFFFFFF
        stamp_send_time(time.monotonic())  # as Layer.on_media does, once per received packet
        for forward in forwarders:
            forward(seq, ts, i & 1, payload)
        if i % 8 == 7:
            drain(sinks)
    u1, s1 = _cpu()
    drain(sinks)
    forwarded = sum(s.packets for s in subs) - len(subs)  # less the keyframe that started them
    assert forwarded == packets * subscribers, (forwarded, packets * subscribers)
    transport.close()
    for sink in sinks:
        sink.close()
    return {
        "user_us": (u1 - u0) / forwarded * 1e6,
        "system_us": (s1 - s0) / forwarded * 1e6,
        "forwarded": forwarded,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = options.parser("python -m loadtest.bench_forward", __doc__)
    parser.add_argument("--subscribers", type=options.positive(int), default=50)
    parser.add_argument("--packets", type=options.positive(int), default=2000)
    parser.add_argument(
        "--simulcast",
        action="store_true",
        help="subscriptions to a simulcast layer: VP8 picture numbering rewritten too",
    )
    parser.add_argument(
        "--abs-send-time",
        action="store_true",
        help="each packet stamped with abs-send-time, as video to a subscriber that "
        "negotiated it (its downlink estimate, sfu.bwe)",
    )
    options.add_json(parser)
    args = parser.parse_args(argv)
    bench = run(args.subscribers, args.packets, args.simulcast, args.abs_send_time)
    try:
        import uvloop

        result = uvloop.run(bench)
    except ImportError:
        result = asyncio.run(bench)
    total = result["user_us"] + result["system_us"]
    env = environment()
    line = (
        f"forward hot path: {total:.2f} µs CPU per forwarded packet "
        f"(user {result['user_us']:.2f}, system {result['system_us']:.2f}) over "
        f"{result['forwarded']:.0f} packets to {args.subscribers} subscribers"
        + (" (simulcast: VP8 renumbered)" if args.simulcast else "")
        + (" (abs-send-time stamped)" if args.abs_send_time else "")
    )
    payload = {"environment": env, "config": vars(args), "result": {**result, "us": total}}
    emit(f"{line}\n{environment_line(env)}", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
