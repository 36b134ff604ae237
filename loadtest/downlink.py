"""Figure and scenario: an `auto` subscriber whose downlink gets capped steps down a layer, and
back up once the cap is lifted, while an unconstrained one stays on `h`.

    python -m loadtest.downlink [--runs 3] [--rate 250kbit] [--clients chromium|python]

Made entirely in network namespaces of its own (root; re-executed under `unshare --net`): the
server, a Chromium page publishing simulcast (fake 720p camera: l/m/h at 320x180, 640x360,
1280x720) and the unconstrained subscriber share this namespace's loopback; the constrained
subscriber runs in a child namespace (`unshare --net`), reached over a veth pair (10.78.0.1
here, 10.78.0.2 there). Subscribers are Chromium pages (the default: its browser runs in the
child namespace through `nsenter`, Playwright drives it over pipes) or Python clients, each in a
process of its own. The cap is `tc qdisc ... tbf` on our end of the pair (what the server sends
that subscriber); `tc ... netem` is not available on these machines.

Each run: both subscribers on `h` for a while, then the cap: seconds until the constrained
one's subscription forwards a lower layer (the step down); the cap lifted, seconds until it is
back on `h` (the step up, through padding probes: a receive-side estimate grows only with what
arrives). Prints one line per run and the medians, or with `--json` a JSON object per run
(tests/browser/test_auto_layer.py runs one and checks it). AIOSFU_DOWNLINK_TRACE=1 prints the
constrained subscriber's estimate, as it changes, to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from loadtest import netns
from loadtest.chromium import CHROMIUM, CHROMIUM_ARGS
from loadtest.options import parser as make_parser
from loadtest.ramp import CAMERA_720P

HERE, THERE = "10.78.0.1", "10.78.0.2"
VETH = ("aiosfu-bwe0", "aiosfu-bwe1")
ROOM = "downlink"
TRACING = bool(os.environ.get("AIOSFU_DOWNLINK_TRACE"))  # to stderr, for a look inside


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise netns.NamespaceError(f"`{' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


# --- the constrained subscriber, in its own namespace --------------------------------------------


async def subscriber(url: str, name: str, address: str) -> None:
    """Join, take the forwarded video, print what is heard every 0.5 s (JSON lines)."""
    from sfu.client import Client

    deadline = time.monotonic() + 10
    while address not in _run("ip", "-o", "addr", "show"):
        if time.monotonic() > deadline:
            raise SystemExit(f"{address} never arrived")
        await asyncio.sleep(0.05)
    client = Client(url, ROOM, name=name, ice_addresses=[address], decode=False)
    await client.connect()
    frames = 0

    async def count(track: Any) -> None:
        nonlocal frames
        while True:
            await track.recv()
            frames += 1

    tasks = []
    try:
        while True:
            remote = await client.next_track(timeout=60)
            if remote.kind == "video":
                tasks.append(asyncio.ensure_future(count(remote.track)))
                break
        while True:
            heard = {"peer": client.peer_id, "layer": remote.layer, "frames": frames}
            print(json.dumps(heard), flush=True)
            await asyncio.sleep(0.5)
    finally:
        for task in tasks:
            task.cancel()
        await client.close()


# --- the scenario, in our namespace --------------------------------------------------------------


def _pair() -> None:
    """A new veth pair (the last went with the namespace of the last run's subscriber)."""
    if VETH[0] in _run("ip", "-o", "link", "show"):
        _run("ip", "link", "del", VETH[0])
    _run("ip", "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1])
    _run("ip", "addr", "add", f"{HERE}/24", "dev", VETH[0])
    _run("ip", "link", "set", VETH[0], "up")


async def _hand_over(pid: int) -> None:
    """Move our pair's far end into the child's namespace, and set it up there."""
    ours, deadline = netns.namespace_id(), time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/ns/net") == ours:  # `unshare` has not unshared yet
        if time.monotonic() > deadline:
            raise netns.NamespaceError("the subscriber's namespace never appeared")
        await asyncio.sleep(0.01)
    _run("ip", "link", "set", VETH[1], "netns", str(pid))
    enter = ("nsenter", "-t", str(pid), "-n")
    _run(*enter, "ip", "link", "set", "lo", "up")
    _run(*enter, "ip", "addr", "add", f"{THERE}/24", "dev", VETH[1])
    _run(*enter, "ip", "link", "set", VETH[1], "up")


def _cap(rate: str | None) -> None:
    if rate is None:
        _run("tc", "qdisc", "del", "dev", VETH[0], "root")
    else:
        _run(
            "tc", "qdisc", "add", "dev", VETH[0], "root", "tbf",
            "rate", rate, "burst", "20kb", "latency", "300ms",
        )  # fmt: skip


async def one_run(rate: str, hold: float, timeout: float, clients: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from sfu.server import RunningServer, ServerConfig

    _pair()
    config = ServerConfig(host="0.0.0.0", port=0, ice_addresses=["127.0.0.1", HERE])
    server = await RunningServer(config).start()
    local = f"http://127.0.0.1:{server.port}/"
    remote = f"http://{HERE}:{server.port}/"
    peers: dict[str, str] = {}  # subscriber name -> peer id
    events: dict[str, Any] = {"rate": rate, "clients": clients}
    children: list[asyncio.subprocess.Process] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                publisher = await (await browser.new_context()).new_page()
                await publisher.add_init_script(CAMERA_720P)
                await publisher.goto(f"{local}?{_query('publisher', cam=True)}")
                if clients == "chromium":
                    # The constrained page's Chromium runs in the child namespace (a process
                    # holds it; Playwright drives the browser over pipes, not the network).
                    holder = await asyncio.create_subprocess_exec(
                        "unshare", "--net", "--", "sleep", "100000"
                    )
                    children.append(holder)
                    await _hand_over(holder.pid)
                    # It reaches the server at HERE, which the resolver rules must let through.
                    args = [
                        f"{a} , EXCLUDE {HERE}" if a.startswith("--host-resolver-rules") else a
                        for a in CHROMIUM_ARGS
                    ]
                    far = await playwright.chromium.launch(
                        executable_path=_wrapper(holder.pid), headless=True, args=args
                    )
                    pages = {
                        "free": await (await browser.new_context()).new_page(),
                        "constrained": await (await far.new_context()).new_page(),
                    }
                    await pages["free"].goto(f"{local}?{_query('free')}")
                    await pages["constrained"].goto(f"{remote}?{_query('constrained')}")
                    for name, page in pages.items():
                        peers[name] = await _page_peer(page)
                else:
                    url = f"ws://{HERE}:{server.port}/ws"
                    me = [sys.executable, "-m", "loadtest.downlink", "--subscriber", url]
                    constrained = await asyncio.create_subprocess_exec(
                        "unshare", "--net", "--", *me, "--name", "constrained",
                        "--address", THERE, stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    children.append(constrained)
                    await _hand_over(constrained.pid)
                    # In a process of its own too: an estimator that shares the server's event
                    # loop takes its delays for congestion.
                    free = await asyncio.create_subprocess_exec(
                        *me, "--name", "free", "--address", "127.0.0.1",
                        stdout=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    children.append(free)
                    for name, child in (("constrained", constrained), ("free", free)):
                        tasks.append(asyncio.ensure_future(_listen(name, child, peers)))
                events.update(await _timeline(server, peers, rate, hold, timeout))
            finally:
                await browser.close()
    finally:
        for task in tasks:
            task.cancel()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.terminate()
            await child.wait()
        await server.stop()
    return events


def _query(name: str, cam: bool = False) -> str:
    return urlencode({"room": ROOM, "name": name, "mic": "0", **({} if cam else {"cam": "0"})})


def _wrapper(pid: int) -> str:
    """An executable that runs Chromium in the namespace `pid` holds."""
    path = Path(tempfile.mkdtemp(prefix="aiosfu-downlink-")) / "chromium"
    path.write_text(f'#!/bin/sh\nexec nsenter -t {pid} -n {CHROMIUM} "$@"\n')
    path.chmod(0o755)
    return str(path)


async def _page_peer(page: Any) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        peer = await page.evaluate("() => globalThis.sfuClient?.peerId ?? null")
        if peer:
            return str(peer)
        await asyncio.sleep(0.1)
    raise RuntimeError("a subscriber page was never welcomed")


async def _listen(name: str, child: Any, peers: dict[str, str]) -> None:
    async for line in child.stdout:
        peers[name] = json.loads(line)["peer"]


async def _timeline(
    server: Any, peers: dict[str, str], rate: str, hold: float, timeout: float
) -> dict[str, Any]:
    def peer(name: str) -> str | None:
        return peers.get(name)

    free_ceilings: set[int | None] = set()  # what bandwidth allowed the free one (None: all)

    def layers() -> dict[str, str | None]:
        """The layer each subscriber's video subscription forwards now."""
        out: dict[str, str | None] = {}
        names = {peer("free"): "free", peer("constrained"): "constrained"}
        for participant in server.backend.participants():
            name = names.get(participant.id)
            if name is None:
                continue
            for sub in participant.subscriptions.values():
                if sub.publication.kind == "video":
                    out[name] = sub.current.rid if sub.current else None
                    if name == "free" and out[name] is not None:
                        free_ceilings.add(sub.auto_layer)
        return out

    async def until(condition: Any, limit: float) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if condition(layers()):
                return time.monotonic() - start
            await asyncio.sleep(0.1)
            if TRACING:
                trace()
        return None

    traced = [""]

    def trace() -> None:
        """The capped subscriber's downlink, whenever it changes."""
        now = time.monotonic()
        for participant in server.backend.participants():
            if participant.id != peer("constrained"):
                continue
            d, e = participant.downlink, participant.downlink.estimate
            line = (
                f"remb={e.remb_total(now)} congested={e.congested(now)} "
                f"loss={e.worst_loss(now)} cap={e.loss_cap} padding={d.padding} {layers()}"
            )
            if line != traced[0]:
                traced[0] = line
                _trace(f"sending={d.sending:.0f} {line}")

    both_h = await until(lambda now: now.get("free") == "h" and now.get("constrained") == "h", 60)
    if both_h is None:
        return {"error": f"not both on h within 60 s: {layers()}"}
    await asyncio.sleep(hold)  # settled on h
    _cap(rate)
    capped_at = time.monotonic()
    _trace(f"capped at {rate}")
    free_seen: set[str | None] = set()

    def down(now: dict[str, str | None]) -> bool:
        free_seen.add(now.get("free"))
        return now.get("constrained") not in ("h", None)

    step_down = await until(down, timeout)
    lowest = layers().get("constrained")
    await asyncio.sleep(hold)  # it stays down while capped
    stayed_down = layers().get("constrained") != "h"
    _cap(None)
    _trace("cap lifted")
    step_up = await until(lambda now: now.get("constrained") == "h", timeout)
    stayed_up = None
    if step_up is not None:
        await asyncio.sleep(hold)  # and stays there
        stayed_up = layers().get("constrained") == "h"
    free_seen.add(layers().get("free"))
    return {
        "step_down": step_down,
        "down_to": lowest,
        "stayed_down": stayed_down,
        "step_up": step_up,
        "stayed_up": stayed_up,
        "free_layers": sorted(str(x) for x in free_seen),
        "free_ceilings": sorted(str(x) for x in free_ceilings),
        "capped_for": time.monotonic() - capped_at,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = make_parser("python -m loadtest.downlink", __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", default="250kbit", help="the cap, as tc says it")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds on a layer before moving")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each step")
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    parser.add_argument(
        "--clients",
        choices=("chromium", "python"),
        default="chromium",
        help="what the two subscribers are (each estimates its own downlink)",
    )
    parser.add_argument("--subscriber", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscriber:
        asyncio.run(subscriber(args.subscriber, args.name, args.address))
        return
    if not netns.inside_own_namespace():
        netns.reexec_in_new_namespace("loadtest.downlink", list(argv or sys.argv[1:]))
    netns.prepare(veth=False)  # lo up, IPv6 off, proven sealed
    downs: list[float] = []
    ups: list[float] = []
    for run in range(args.runs):
        result = asyncio.run(one_run(args.rate, args.hold, args.timeout, args.clients))
        if args.json:
            print(json.dumps(result), flush=True)
            continue
        print(
            f"run {run + 1}: cap {args.rate}: step down "
            f"{_secs(result.get('step_down'))} (to {result.get('down_to')}), step up "
            f"{_secs(result.get('step_up'))} after the cap was lifted; the free subscriber on "
            f"{result.get('free_layers')} (bandwidth allowed it {result.get('free_ceilings')}); "
            f"{result.get('error', '')}",
            flush=True,
        )
        if result.get("step_down") is not None:
            downs.append(result["step_down"])
        if result.get("step_up") is not None:
            ups.append(result["step_up"])
    if not args.json and downs:
        print(
            f"step down: median {statistics.median(downs):.1f} s ({len(downs)} runs); step up: "
            + (f"median {statistics.median(ups):.1f} s ({len(ups)} runs)" if ups else "none")
        )


def _trace(line: str) -> None:
    if TRACING:
        print(f"{time.monotonic():.1f} {line}", file=sys.stderr, flush=True)


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
