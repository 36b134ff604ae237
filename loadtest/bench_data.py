"""Data channel relay: throughput and latency between two Python clients through the server.

    python -m loadtest.bench_data [--messages 2000] [--size 200] [--rate 100] [--seconds 5]
        [--json PATH]

Starts the server as a process of its own (loadtest.serverproc), with the data rate limits off
(by default they cap a participant at 50 messages a second), and two clients in this process
(sfu.client, `data=True`), one sending to the other through it. Two runs per channel
(`reliable`, `lossy`):

- latency: `--rate` messages a second for `--seconds`, each carrying the time it was sent; the
  receiver takes the difference on the same clock (p50, p99, max, in ms);
- throughput: `--messages` messages of `--size` bytes of payload as fast as the sender's
  channel takes them (it waits while more than 256 KiB are buffered), timed from the first
  message received to the last; and the server's CPU per message relayed (its /proc counters),
  which on a machine shared with other work is the steadier figure.

aiortc's SCTP is pure Python at both ends of both hops: the figures are aiortc's as much as the
server's. The lossy channel loses nothing on loopback unless a queue overflows: loss is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from sfu.client import Client

from . import options
from .report import emit, environment, environment_line
from .serverproc import ServerProcess
from .stats import summary

ROOM = "bench-data"
BUFFERED_MAX = 256 * 1024  # bytes the sender lets its channel hold before it waits


async def _connected(url: str) -> tuple[Client, Client]:
    sender = Client(url, ROOM, name="sender", ice_addresses=["127.0.0.1"], data=True)
    receiver = Client(url, ROOM, name="receiver", ice_addresses=["127.0.0.1"], data=True)
    await sender.connect()
    await receiver.connect()
    # Until a message gets through both ways: the server then holds both clients' channels.
    for reliable in (True, False):
        for one, other in ((sender, receiver), (receiver, sender)):
            while True:
                await one.send_data("ready", reliable=reliable)
                try:
                    if (await other.next_data(timeout=0.5)).payload == "ready":
                        break
                except TimeoutError:
                    continue
    for client in (sender, receiver):
        while not client._data_queue.empty():  # extra "ready"s
            client._data_queue.get_nowait()
    return sender, receiver


async def latency(
    sender: Client, receiver: Client, count: int, rate: float, reliable: bool
) -> dict[str, Any]:
    delays: list[float] = []

    async def receive() -> None:
        while len(delays) < count:
            msg = await receiver.next_data(timeout=5)
            delays.append(time.perf_counter() - msg.payload["t"])

    reader = asyncio.ensure_future(receive())
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        await sender.send_data({"t": time.perf_counter(), "n": n}, reliable=reliable)
    with contextlib.suppress(TimeoutError):  # lossy: some may never come
        await asyncio.wait_for(reader, 10)
    return {**summary(delays, scale=1000.0), "lost": count - len(delays)}


async def throughput(
    server: ServerProcess, sender: Client, receiver: Client, count: int, size: int, reliable: bool
) -> dict[str, Any]:
    kind = "reliable" if reliable else "lossy"
    channel = sender._channels[kind]
    filler = "x" * size
    arrivals: list[float] = []

    async def receive() -> None:
        while len(arrivals) < count:
            await receiver.next_data(timeout=5)
            arrivals.append(time.perf_counter())

    drained = asyncio.Event()
    channel.bufferedAmountLowThreshold = BUFFERED_MAX // 2
    channel.on("bufferedamountlow", drained.set)
    reader = asyncio.ensure_future(receive())
    cpu0 = server.cpu_seconds()
    for n in range(count):
        if channel.bufferedAmount > BUFFERED_MAX:
            drained.clear()
            await drained.wait()
        await sender.send_data({"n": n, "fill": filler}, reliable=reliable)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, 30)
    cpu = server.cpu_seconds() - cpu0
    got = len(arrivals)
    span = arrivals[-1] - arrivals[0] if got > 1 else float("nan")
    per_second = (got - 1) / span if got > 1 else 0.0
    return {
        "messages_per_s": round(per_second, 1),
        "payload_mb_per_s": round(per_second * size / 1e6, 3),
        "server_cpu_us_per_message": round(cpu / max(got, 1) * 1e6, 1),
        "lost": count - got,
    }


async def bench(messages: int, size: int, rate: float, seconds: float) -> dict[str, Any]:
    limits_off = ["--data-rate", "0", "--data-byte-rate", "0"]
    async with ServerProcess(extra_args=limits_off) as server:
        sender, receiver = await _connected(server.url)
        try:
            result: dict[str, Any] = {}
            for reliable in (True, False):
                kind = "reliable" if reliable else "lossy"
                count = max(10, int(rate * seconds))
                result[kind] = {
                    "latency_ms": await latency(sender, receiver, count, rate, reliable),
                    "throughput": await throughput(
                        server, sender, receiver, messages, size, reliable
                    ),
                }
            return result
        finally:
            await sender.close()
            await receiver.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = options.parser("python -m loadtest.bench_data", __doc__)
    parser.add_argument("--messages", type=options.positive(int), default=2000)
    parser.add_argument("--size", type=options.positive(int), default=200)
    parser.add_argument("--rate", type=options.positive(float), default=100.0)
    parser.add_argument(
        "--seconds", type=options.positive(float), default=5.0, help="of the latency runs"
    )
    options.add_json(parser)
    args = parser.parse_args(argv)
    result = asyncio.run(bench(args.messages, args.size, args.rate, args.seconds))
    lines = []
    for kind, found in result.items():
        lat, put = found["latency_ms"], found["throughput"]
        lines.append(
            f"{kind:8} latency at {args.rate:g}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
            f"max {lat['max']} ms, lost {lat['lost']}; throughput ({args.size} B): "
            f"{put['messages_per_s']} msg/s, {put['payload_mb_per_s']} MB/s, server CPU "
            f"{put['server_cpu_us_per_message']} µs/message, lost {put['lost']}"
        )
    env = environment()
    payload = {"environment": env, "config": vars(args), "result": result}
    emit("\n".join(lines) + f"\n{environment_line(env)}", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
