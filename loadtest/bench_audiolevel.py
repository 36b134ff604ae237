"""Micro-benchmark: what reading the audio level costs the server per audio packet.

    python -m loadtest.bench_audiolevel [--subscribers 10] [--packets 20000] [--rounds 5]

Runs the real receive-and-forward chain for one publisher's audio: the receive hook
(sfu.rtc.ingress: SRTP unprotect in place, the one-byte header extensions scanned once, the
handler called), the real Layer (ring, statistics), and N real subscriptions' RtpOutput.forward
(header rewrite, SRTP protect, sendto on sockets this process drains), on packets shaped like
Chromium's Opus (audio level, abs-send-time and the transport-wide number in one-byte
extensions; 100 bytes of payload). Each round runs it twice, the audio level not read and read
(into the publication's AudioLevel, sfu.speakers), interleaved so that drift hits both alike.
Prints the ingress alone in ns of CPU per received packet (the level is paid once per packet,
whatever the number of subscribers) and the whole chain in µs of CPU per forwarded packet (the
process's CPU clock, user and system: on a shared machine, far steadier than wall time).

Run it under another checkout (`PYTHONPATH=/path/to/before python -m loadtest.bench_audiolevel`)
for the reference figure of a tree that cannot read levels: it then measures only the first way.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from pylibsrtp import Policy, Session

from sfu.layer import Layer
from sfu.rtc.ingress import RtpIngress

from . import options
from .bench_forward import BenchPublication, drain, live_subscriptions
from .report import emit, environment, environment_line

KEY = bytes(range(30))  # AES-128-CM: 16-byte key, 14-byte salt
SSRC = 0x11223344
LEVEL_ID, ABS_SEND_TIME_ID, TWCC_ID = 1, 2, 3  # Chromium's numbers
READS_LEVELS = hasattr(RtpIngress, "use_audio_level")


class _AudioPublication(BenchPublication):
    """bench_forward's stand-in for a Publication, with one audio layer."""

    kind = "audio"
    id = "bench-audio"
    payload_type, rtx_payload_type, clock_rate = 111, 112, 48000  # no RTX comes

    def __init__(self) -> None:
        super().__init__(simulcast=False)
        self.keyframe_start = lambda payload: True  # audio starts anywhere
        me: Any = self
        self.layer = Layer(me, 0, None)  # with this class's payload types


def packets(count: int) -> list[bytes]:
    tx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    out = []
    for seq in range(count):
        level = 20 + seq % 40  # speech-like: -20 to -60 dBov
        elements = bytes((LEVEL_ID << 4, 0x80 | level, ABS_SEND_TIME_ID << 4 | 2, 1, 2, 3))
        elements += bytes((TWCC_ID << 4 | 1,)) + struct.pack("!H", seq & 0xFFFF)
        elements += bytes(-len(elements) % 4)
        extension = struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
        header = struct.pack("!BBHII", 0x90, 111, seq & 0xFFFF, seq * 960, SSRC)
        out.append(tx.protect(header + extension + os.urandom(100)))
    return out


def _cpu() -> int:
    # This process's CPU time (user and system) in ns, at the clock's own resolution: a machine
    # shared with other work inflates wall time, much less this.
    return time.process_time_ns()


async def run(data: list[bytes], subscribers: int, read_levels: bool) -> dict[str, float]:
    """One pass of `data` through a fresh ingress, layer and subscriptions."""
    publication = _AudioPublication()
    transport, sinks = await live_subscriptions(publication, subscribers, 111, (0xFFFF, b"\x00"))
    rx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    dtls: Any = SimpleNamespace(_rx_srtp=rx)
    ingress = RtpIngress(dtls)
    ingress.use_transport_cc(TWCC_ID, 1)
    layer = publication.layer
    layer.latch(SSRC, 111, 0)
    handler = layer.on_lean
    level = None
    if read_levels:
        from sfu.speakers import AudioLevel

        level = AudioLevel()
        ingress.use_audio_level(LEVEL_ID)
        ingress._levels[SSRC] = level  # register() without a socket
    take = ingress._take
    cpu0 = _cpu()
    for i, packet in enumerate(data):
        take(packet, handler)
        if sinks and i % 8 == 7:
            drain(sinks)
    cpu1 = _cpu()
    drain(sinks)
    transport.close()
    for sink in sinks:
        sink.close()
    forwarded = sum(s.packets for s in publication.subscriptions) - subscribers
    assert forwarded == len(data) * subscribers, (forwarded, len(data) * subscribers)
    # Every packet, and the one the subscriptions started on (live_subscriptions).
    assert layer.packets == len(data) + 1, (layer.packets, len(data))
    if level is not None:
        assert level.count == len(data), (level.count, len(data))
    return {
        "ns_per_packet": (cpu1 - cpu0) / len(data),
        "cpu_us_per_forwarded": (cpu1 - cpu0) / max(forwarded, 1) / 1000,
    }


async def bench(count: int, subscribers: int, rounds: int) -> dict[str, list[float]]:
    data = packets(count)
    found: dict[str, list[float]] = {}
    ways = [False, True] if READS_LEVELS else [False]
    for _ in range(rounds):
        for read in ways:
            name = "level read" if read else "level not read"
            alone = await run(data, 0, read)
            chain = await run(data, subscribers, read)
            found.setdefault(f"{name}: receive (ingress + layer) ns CPU/packet", []).append(
                alone["ns_per_packet"]
            )
            found.setdefault(f"{name}: µs CPU/forwarded", []).append(chain["cpu_us_per_forwarded"])
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = options.parser("python -m loadtest.bench_audiolevel", __doc__)
    parser.add_argument("--subscribers", type=options.positive(int), default=10)
    parser.add_argument("--packets", type=options.positive(int), default=20000)
    parser.add_argument("--rounds", type=options.positive(int), default=5)
    options.add_json(parser)
    args = parser.parse_args(argv)
    found = asyncio.run(bench(args.packets, args.subscribers, args.rounds))
    best = {name: min(values) for name, values in found.items()}
    env = environment()
    lines = [
        f"{name}: {value:.3f}" if "µs" in name else f"{name}: {value:.0f}"
        for name, value in best.items()
    ]
    line = (
        f"audio level, {'read' if READS_LEVELS else 'not readable in this tree'}; best of "
        f"{args.rounds} rounds of {args.packets} packets, {args.subscribers} subscribers\n  "
        + "\n  ".join(lines)
    )
    payload = {"environment": env, "config": vars(args), "result": {"best": best, "all": found}}
    emit(f"{line}\n{environment_line(env)}", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
