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
server's. Loss is shown: on loopback, the lossy channel loses what overflows a queue, and the
server drops what a receiver's reliable channel cannot take (its backlog over 1 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from sfu.client import Client
from sfu.peerconfig import rtc_configuration
from sfu.rtc.ice import set_ice_addresses

from . import options
from .report import emit, environment, environment_line
from .serverproc import ServerProcess
from .stats import summary

ROOM = "bench-data"
BUFFERED_MAX = 256 * 1024  # bytes the sender lets its channel hold before it waits


@dataclass
class Link:
    """One way from a sender to a receiver, on both kinds of channel: through the server (two
    Python clients) or direct (two aiortc connections: the reference, no server hop)."""

    send: Callable[[Any, bool], Awaitable[None]]  # (payload, reliable)
    receive: Callable[[float], Awaitable[Any]]  # the next payload, within a timeout
    channel: Callable[[str], RTCDataChannel]  # the sender's channel of a kind
    close: Callable[[], Awaitable[None]]


async def through_server(url: str) -> Link:
    sender = Client(url, ROOM, name="sender", ice_addresses=["127.0.0.1"], data=True)
    receiver = Client(url, ROOM, name="receiver", ice_addresses=["127.0.0.1"], data=True)
    await sender.connect()
    await receiver.connect()
    # Until a message gets through both ways: the server then holds both clients' channels.
    for reliable in (True, False):
        for one, other in ((sender, receiver), (receiver, sender)):
            while True:
                await one.send_data("ready", reliable=reliable)
                with contextlib.suppress(TimeoutError):
                    if (await other.next_data(timeout=0.5)).payload == "ready":
                        break
    for client in (sender, receiver):
        while not client._data_queue.empty():  # extra "ready"s
            client._data_queue.get_nowait()

    async def send(payload: Any, reliable: bool) -> None:
        await sender.send_data(payload, reliable=reliable)

    async def receive(timeout: float) -> Any:
        return (await receiver.next_data(timeout)).payload

    async def close() -> None:
        await sender.close()
        await receiver.close()

    return Link(send, receive, lambda kind: sender._channels[kind], close)


async def direct() -> Link:
    set_ice_addresses(["127.0.0.1"])
    one, other = (RTCPeerConnection(rtc_configuration([])) for _ in range(2))
    channels = {
        "reliable": one.createDataChannel("reliable"),
        "lossy": one.createDataChannel("lossy", ordered=False, maxRetransmits=0),
    }
    inbox: asyncio.Queue[str] = asyncio.Queue()
    opened = asyncio.Event()

    @other.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        channel.on("message", inbox.put_nowait)

    channels["lossy"].on("open", opened.set)
    await one.setLocalDescription(await one.createOffer())
    await other.setRemoteDescription(one.localDescription)
    await other.setLocalDescription(await other.createAnswer())
    await one.setRemoteDescription(other.localDescription)
    await asyncio.wait_for(opened.wait(), 10)

    async def send(payload: Any, reliable: bool) -> None:
        channels["reliable" if reliable else "lossy"].send(json.dumps(payload))

    async def receive(timeout: float) -> Any:
        return json.loads(await asyncio.wait_for(inbox.get(), timeout))

    async def close() -> None:
        await one.close()
        await other.close()

    return Link(send, receive, channels.__getitem__, close)


async def latency(link: Link, count: int, rate: float, reliable: bool) -> dict[str, Any]:
    delays: list[float] = []

    async def receive() -> None:
        while len(delays) < count:
            payload = await link.receive(5)
            delays.append(time.perf_counter() - payload["t"])

    reader = asyncio.ensure_future(receive())
    start = time.perf_counter()
    for n in range(count):
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
        await link.send({"t": time.perf_counter(), "n": n}, reliable)
    with contextlib.suppress(TimeoutError):  # lossy: some may never come
        await asyncio.wait_for(reader, 10)
    return {**summary(delays, scale=1000.0), "lost": count - len(delays)}


async def throughput(
    link: Link, count: int, size: int, reliable: bool, server: ServerProcess | None
) -> dict[str, Any]:
    channel = link.channel("reliable" if reliable else "lossy")
    filler = "x" * size
    arrivals: list[float] = []

    async def receive() -> None:
        while len(arrivals) < count:
            await link.receive(5)
            arrivals.append(time.perf_counter())

    drained = asyncio.Event()
    channel.bufferedAmountLowThreshold = BUFFERED_MAX // 2
    channel.on("bufferedamountlow", drained.set)
    reader = asyncio.ensure_future(receive())
    cpu0 = server.cpu_seconds() if server is not None else 0.0
    for n in range(count):
        if channel.bufferedAmount > BUFFERED_MAX:
            drained.clear()
            await drained.wait()
        await link.send({"n": n, "fill": filler}, reliable)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader, 30)
    got = len(arrivals)
    span = arrivals[-1] - arrivals[0] if got > 1 else float("nan")
    per_second = (got - 1) / span if got > 1 else 0.0
    found: dict[str, Any] = {
        "messages_per_s": round(per_second, 1),
        "payload_mb_per_s": round(per_second * size / 1e6, 3),
        "lost": count - got,
    }
    if server is not None:
        cpu = server.cpu_seconds() - cpu0
        found["server_cpu_us_per_message"] = round(cpu / max(got, 1) * 1e6, 1)
    return found


async def measure(
    link: Link, messages: int, size: int, rate: float, seconds: float, server: ServerProcess | None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    try:
        for reliable in (True, False):
            count = max(10, int(rate * seconds))
            result["reliable" if reliable else "lossy"] = {
                "latency_ms": await latency(link, count, rate, reliable),
                "throughput": await throughput(link, messages, size, reliable, server),
            }
    finally:
        await link.close()
    return result


async def bench(
    messages: int, size: int, rate: float, seconds: float, reference: bool
) -> dict[str, Any]:
    limits_off = ["--data-rate", "0", "--data-byte-rate", "0"]
    result: dict[str, Any] = {}
    async with ServerProcess(extra_args=limits_off) as server:
        link = await through_server(server.url)
        result["through the server"] = await measure(link, messages, size, rate, seconds, server)
    if reference:
        link = await direct()
        result["direct (reference)"] = await measure(link, messages, size, rate, seconds, None)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = options.parser("python -m loadtest.bench_data", __doc__)
    parser.add_argument("--messages", type=options.positive(int), default=2000)
    parser.add_argument("--size", type=options.positive(int), default=200)
    parser.add_argument("--rate", type=options.positive(float), default=100.0)
    parser.add_argument(
        "--seconds", type=options.positive(float), default=5.0, help="of the latency runs"
    )
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the direct connection's figures"
    )
    options.add_json(parser)
    args = parser.parse_args(argv)
    result = asyncio.run(
        bench(args.messages, args.size, args.rate, args.seconds, not args.no_reference)
    )
    lines = []
    for path, kinds in result.items():
        lines.append(f"{path}:")
        for kind, found in kinds.items():
            lat, put = found["latency_ms"], found["throughput"]
            cpu = put.get("server_cpu_us_per_message")
            lines.append(
                f"  {kind:8} latency at {args.rate:g}/s: p50 {lat['p50']} ms, p99 {lat['p99']} ms,"
                f" max {lat['max']} ms, lost {lat['lost']}; throughput ({args.size} B): "
                f"{put['messages_per_s']} msg/s, {put['payload_mb_per_s']} MB/s, lost "
                f"{put['lost']}" + (f"; server CPU {cpu} µs/message" if cpu is not None else "")
            )
    env = environment()
    payload = {"environment": env, "config": vars(args), "result": result}
    emit("\n".join(lines) + f"\n{environment_line(env)}", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
