"""Micro-benchmark of the forwarding hot path: what one forwarded RTP packet costs in Python.

    python -m loadtest.bench_forward [--subscribers 50] [--packets 2000] [--json PATH]

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
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from aioice.ice import StunProtocol
from pylibsrtp import Policy, Session

from sfu.rtc.fastpath import RtpOutput
from sfu.subscription import Subscription

from . import options
from .report import emit, environment, environment_line


class _Publication:
    kind = "video"
    publisher_id = "bench"
    log = logging.getLogger(__name__)

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.forwarders: list[Callable[[int, int, int, bytes], bool]] = []
        self.waiting = 0

    def add(self, sub: Subscription) -> None:
        self.subscriptions.append(sub)

    def go_live(self, sub: Subscription) -> None:
        self.forwarders.append(sub.forward)

    def remove(self, sub: Subscription) -> None:
        self.subscriptions.remove(sub)

    def request_keyframe(self) -> None:
        pass


def _cpu() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


async def run(subscribers: int, packets: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    no_connection: Any = SimpleNamespace(protocol_lost=lambda protocol: None)  # it only sends here
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: StunProtocol(no_connection), local_addr=("127.0.0.1", 0)
    )
    sinks = []
    publication = _Publication()
    for _ in range(subscribers):
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
        output = RtpOutput(sender, 96)  # type: ignore[arg-type]
        assert output.bind()
        sub = Subscription(publication, "bench")  # type: ignore[arg-type]
        sub._output, sub.ready = output, True
        publication.waiting += 1
        sub.try_start(0, 0, 0, b"\x00", True)  # a keyframe: live from now on

    payload = os.urandom(1000)
    subs = tuple(publication.subscriptions)
    forwarders = tuple(publication.forwarders)

    def drain() -> None:
        for sink in sinks:
            try:
                while True:
                    sink.recv(2048)
            except BlockingIOError:
                pass

    u0, s0 = _cpu()
    for i in range(packets):
        seq, ts = (i + 1) & 0xFFFF, (i // 4 * 3000) & 0xFFFFFFFF
        for forward in forwarders:
            forward(seq, ts, i & 1, payload)
        if i % 8 == 7:
            drain()
    u1, s1 = _cpu()
    drain()
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
    options.add_json(parser)
    args = parser.parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(run(args.subscribers, args.packets))
    except ImportError:
        result = asyncio.run(run(args.subscribers, args.packets))
    total = result["user_us"] + result["system_us"]
    env = environment()
    line = (
        f"forward hot path: {total:.2f} µs CPU per forwarded packet "
        f"(user {result['user_us']:.2f}, system {result['system_us']:.2f}) over "
        f"{result['forwarded']:.0f} packets to {args.subscribers} subscribers"
    )
    payload = {"environment": env, "config": vars(args), "result": {**result, "us": total}}
    emit(f"{line}\n{environment_line(env)}", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
