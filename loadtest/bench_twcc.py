"""Micro-benchmark: what transport-cc costs the server per packet a publisher sends.

    python -m loadtest.bench_twcc [--packets 20000]

Runs the real receive hook (sfu.rtc.ingress: SRTP unprotect in place, header read, handler
call) on packets shaped like Chromium's (abs-send-time and the transport-wide sequence number in
one-byte header extensions, ~1,100 bytes), with the transport-wide number read and recorded and
without, and the feedback built every 100 ms (sfu.rtc.twcc) at 300 packets/s. Each publisher's
packet is paid once, whatever the number of subscribers: at N subscribers, divide by N for the
cost per forwarded packet. Prints ns per packet; asserts only that every packet was handled.
"""

from __future__ import annotations

import argparse
import os
import platform
import struct
import time
from types import SimpleNamespace
from typing import Any

from pylibsrtp import Policy, Session

from sfu.rtc.ingress import RtpIngress
from sfu.rtc.twcc import TransportFeedback

KEY = bytes(range(30))  # AES-128-CM: 16-byte key, 14-byte salt
SSRC = 0x11223344
TWCC_ID, ABS_SEND_TIME_ID = 3, 2


def packets(count: int) -> list[bytes]:
    tx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    out = []
    for seq in range(count):
        elements = bytes((ABS_SEND_TIME_ID << 4 | 2, 1, 2, 3, TWCC_ID << 4 | 1))
        elements += struct.pack("!H", seq & 0xFFFF) + b"\x00"  # padded to 32 bits
        extension = struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
        header = struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, seq * 3000, SSRC)
        out.append(tx.protect(header + extension + bytes(1100)))
    return out


def run(data: list[bytes], with_twcc: bool) -> tuple[float, int]:
    rx = Session(Policy(key=KEY, ssrc_type=Policy.SSRC_ANY_INBOUND))
    dtls: Any = SimpleNamespace(_rx_srtp=rx)
    ingress = RtpIngress(dtls)
    handled = 0

    def handler(pt: int, marker: int, seq: int, timestamp: int, payload: bytes) -> None:
        nonlocal handled
        handled += 1

    twcc = ingress.use_transport_cc(TWCC_ID, 1) if with_twcc else None
    take = ingress._take
    start = time.perf_counter_ns()
    for packet in data:
        take(packet, handler)
    elapsed = time.perf_counter_ns() - start
    assert handled == len(data), f"handled {handled} of {len(data)}"
    if twcc is not None:
        assert len(twcc.received) == len(data), f"recorded {len(twcc.received)} of {len(data)}"
    return elapsed / len(data), handled


def feedback_cost(count: int) -> float:
    """ns per packet of building feedback every 100 ms at 300 packets/s (30 per feedback)."""
    fb = TransportFeedback(1, 2)
    spent = 0
    for seq in range(count):
        fb.add(seq & 0xFFFF, seq / 300)
        if seq % 30 == 29:
            start = time.perf_counter_ns()
            fb.build()
            spent += time.perf_counter_ns() - start
    return spent / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = packets(args.packets)
    plain, numbered = [], []
    for _ in range(args.rounds):  # interleaved, so that drift hits both alike
        plain.append(run(data, with_twcc=False)[0])
        numbered.append(run(data, with_twcc=True)[0])
    build = feedback_cost(args.packets)
    best_plain, best_numbered = min(plain), min(numbered)
    print(
        f"ingress, extension not read: {best_plain:.0f} ns/packet; transport-cc read and "
        f"recorded: {best_numbered:.0f} ns/packet (+{best_numbered - best_plain:.0f}); "
        f"feedback built: {build:.0f} ns/packet; best of {args.rounds} rounds of "
        f"{args.packets} packets, python {platform.python_version()}, {os.cpu_count()} cpus"
    )


if __name__ == "__main__":
    main()
