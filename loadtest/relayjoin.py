"""Join time with every peer relayed through TURN, next to direct: `python -m loadtest.relayjoin`.

    python -m loadtest.relayjoin [--runs 5] [--subscribers 4] [--json PATH]

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
every value, p50, p95 and max, and the ICE pair types the subscribers' connections selected
(`relay/relay` is what turn-only must show). Loopback has no latency: what the relay adds here
is the TURN allocations (the client's and the server's), their permission and channel set-up,
and the extra hops through coturn, not the network's round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from sfu.client import Client
from sfu.rtc.candidates import selected_pair_types

from . import netns
from .clip import ClipTrack, encode_clip, hook_keyframe_requests
from .coturn import running_coturn
from .serverproc import HOST, ServerProcess

SECRET = "aiosfu-relayjoin-secret"
ROOM = "relayjoin"
MODES = ("all", "turn-only")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.relayjoin", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=5, help="fresh servers per mode")
    parser.add_argument("--subscribers", type=int, default=4, help="joins per run")
    parser.add_argument("--json", metavar="PATH", help="write every measurement there")
    return parser.parse_args(argv)


async def one_run(mode: str, turn_url: str, subscribers: int, track: ClipTrack) -> list[Any]:
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
            sender = next(s for s in publisher.pc.getSenders() if s.track is track)
            hook_keyframe_requests(sender, track)
            for i in range(subscribers):
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
        finally:
            for client in clients:
                await client.close()
    return joins


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered):6.1f}  p95 {p95:6.1f}  max {ordered[-1]:6.1f} ms "
        f"(n={len(ordered)})"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    clip = encode_clip(width=640, height=480, fps=30, bit_rate=1_000_000)
    results: dict[str, list[Any]] = {mode: [] for mode in MODES}
    async with running_coturn(SECRET) as coturn:
        for run in range(args.runs):
            for mode in MODES if run % 2 == 0 else reversed(MODES):  # alternate: drift is fair
                track = ClipTrack(clip)
                try:
                    joins = await one_run(mode, coturn.url, args.subscribers, track)
                finally:
                    track.stop()
                results[mode].extend(joins)
                print(f"run {run + 1} {mode:9}: " + ", ".join(f"{j['ms']:.0f}" for j in joins))
        allocations = len(coturn.allocations())
    print()
    for mode in MODES:
        pairs = sorted({j["pair"] for j in results[mode]})
        print(f"{mode:9}  {summary([j['ms'] for j in results[mode]])}  pairs {', '.join(pairs)}")
    print(f"coturn allocations: {allocations}")
    return {"runs": args.runs, "subscribers": args.subscribers, "joins": results}


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
