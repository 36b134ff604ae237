"""Join time with every peer relayed through TURN, next to direct: `python -m loadtest.relayjoin`.

    python -m loadtest.relayjoin [--runs 5] [--subscribers 4] [--window 10] [--json PATH]

Needs root and coturn: it re-executes itself inside a network namespace of its own
(loadtest.netns: loopback only, no route out, checked first) and starts coturn there on
127.0.0.1 with use-auth-secret (loadtest.coturn). Per run, a fresh `aiosfu serve` process, in
turn: ICE_MODE=all (host candidates on 127.0.0.1: the direct path) and ICE_MODE=turn-only
(TURN_URLS is that coturn, TURN_SECRET its secret: every peer, the server's own connections
too, relays through it). One publisher sends the pre-encoded VP8 clip (loadtest.clip:
640x480, 30 fps, ~1 Mbps; a keyframe only when asked); then the subscribers join one after
the other, each once the previous one has its first frame.

Join time, per subscriber: from opening its WebSocket (`join` follows at once) to the first
encoded frame it receives (the keyframe it asked for, or one replayed from the server's ring),
what loadtest.peers and loadtest.forwarding call join time too. The report gives, per mode,
every value, p50, p95 (nearest-rank, loadtest.stats) and max, and the ICE pair types the
subscribers' connections selected (`relay/relay` is what turn-only must show). Loopback has no
latency: what the relay adds here is the TURN allocations (the client's and the server's), their
permission and channel set-up, and the extra hops through coturn, not the network's round trips.

Then, with every subscriber receiving, `--window` seconds of forwarding: the server process's
CPU time (utime + stime) over the packets its /metrics says it forwarded, in µs per packet (in
turn-only mode each one goes out through the server's own TURN allocation, in a ChannelData
frame). Few subscribers: it shows the difference between the modes, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from sfu.client import Client
from sfu.rtc.candidates import selected_pair_types

from . import netns
from .clip import ClipTrack, encode_clip, hook_keyframe_requests
from .coturn import running_coturn
from .run import metrics_url, scrape_forwarded
from .serverproc import HOST, ServerProcess
from .stats import percentile, sender_of

SECRET = "aiosfu-relayjoin-secret"
ROOM = "relayjoin"
MODES = ("all", "turn-only")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.relayjoin", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh servers per mode")
    parser.add_argument("--subscribers", type=int, default=4, help="joins per run")
    parser.add_argument("--window", type=float, default=10.0, help="s of forwarding measured")
    parser.add_argument("--json", metavar="PATH", help="write every measurement there")
    return parser.parse_args(argv)


async def one_run(
    mode: str, turn_url: str, args: argparse.Namespace, track: ClipTrack
) -> tuple[list[Any], float | None]:
    env = {"ICE_MODE": mode}
    if mode == "turn-only":
        env |= {"TURN_URLS": turn_url, "TURN_SECRET": SECRET}
    joins: list[Any] = []
    async with ServerProcess(env=env) as server:
        publisher = Client(server.url, ROOM, name="publisher", ice_addresses=[HOST], decode=False)
        clients = [publisher]
        try:
            await publisher.connect()
            await publisher.publish(track)
            assert publisher.pc is not None
            hook_keyframe_requests(sender_of(publisher.pc, track), track)
            for i in range(args.subscribers):
                client = Client(
                    server.url, ROOM, name=f"sub{i}", ice_addresses=[HOST], decode=False
                )
                clients.append(client)
                started = time.monotonic()
                await client.connect()
                remote = await client.next_track(timeout=20)
                await asyncio.wait_for(remote.track.recv(), 20)
                elapsed = time.monotonic() - started
                assert client.pc is not None
                pair = selected_pair_types(client.pc)
                joins.append({"ms": round(elapsed * 1000, 1), "pair": "/".join(pair or ("?",))})
            return joins, await cpu_per_packet(server, args.window)
        finally:
            for client in clients:
                await client.close()


async def cpu_per_packet(server: ServerProcess, window: float) -> float | None:
    """Server CPU µs per forwarded packet over `window` seconds; None if nothing was forwarded."""
    url = metrics_url(server.url)
    async with aiohttp.ClientSession() as session:
        cpu0, scraped0 = server.cpu_seconds(), await scrape_forwarded(session, url)
        await asyncio.sleep(window)
        cpu1, scraped1 = server.cpu_seconds(), await scrape_forwarded(session, url)
    if scraped0 is None or scraped1 is None or scraped1[0] <= scraped0[0]:
        return None
    return (cpu1 - cpu0) * 1e6 / (scraped1[0] - scraped0[0])


def describe(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50):6.1f}  p95 {percentile(values, 95):6.1f}  "
        f"max {max(values):6.1f} ms (n={len(values)})"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    clip = encode_clip(width=640, height=480, fps=30, bit_rate=1_000_000)
    results: dict[str, list[Any]] = {mode: [] for mode in MODES}
    costs: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with running_coturn(SECRET) as coturn:
        for run in range(args.runs):
            for mode in MODES if run % 2 == 0 else reversed(MODES):  # alternate: drift is fair
                track = ClipTrack(clip)
                try:
                    joins, cost = await one_run(mode, coturn.url, args, track)
                finally:
                    track.stop()
                results[mode].extend(joins)
                if cost is not None:
                    costs[mode].append(round(cost, 1))
                print(
                    f"run {run + 1} {mode:9}: joins "
                    + ", ".join(f"{j['ms']:.0f}" for j in joins)
                    + f" ms; server {cost or 0:.1f} µs/forwarded packet"
                )
        allocations = len(coturn.allocations())
    print()
    for mode in MODES:
        pairs = sorted({j["pair"] for j in results[mode]})
        print(f"{mode:9}  {describe([j['ms'] for j in results[mode]])}  pairs {', '.join(pairs)}")
    for mode in MODES:
        if costs[mode]:
            print(
                f"{mode:9}  server CPU {percentile(costs[mode], 50):.1f} µs/forwarded packet "
                f"(median of {costs[mode]})"
            )
    print(f"coturn allocations: {allocations}")
    return {
        "runs": args.runs,
        "subscribers": args.subscribers,
        "window": args.window,
        "joins": results,
        "server_us_per_packet": costs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not netns.inside_own_namespace():
        netns.reexec_in_new_namespace("loadtest.relayjoin", argv)
    netns.prepare(veth=False)
    print(netns.describe())
    report = asyncio.run(main_async(args))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
