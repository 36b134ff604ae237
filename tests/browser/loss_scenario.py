"""A three-party call through 5 % random packet loss, in a network namespace of its own: run by
tests/browser/test_loss.py as `unshare --net -- python -m tests.browser.loss_scenario PARENT_NS`;
it prints what each receiver saw as JSON (last line).

A server process on 127.0.0.1; a Chromium room page (fake camera) and two Python clients
(`Client`, test-pattern video, encoded frames received) in one room, each receiving the other
two. Once every receiver has video from both others and LOSS_SECONDS more of clean call, iptables
drops LOSS of all UDP (every packet on `lo`: media and feedback, both ways) for LOSS_SECONDS.
Each receiver's longest freeze in that window comes from its frame arrival times: Chromium's
`framesDecoded` (getStats, polled every POLL_MS in the page), the Python clients' frames as
`recv()` returns them. The server's counters of NACKs, PLIs and loss resyncs come with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp
from aiortc.codecs import vpx
from aiortc.mediastreams import MediaStreamError
from playwright.async_api import async_playwright

from loadtest.netns import namespace_id
from loadtest.serverproc import ServerProcess
from sfu.client import Client, RemoteTrack
from sfu.media import TestPatternTrack
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.roompage import RoomPage
from tests.util import eventually_async

LOSS = 0.05
LOSS_SECONDS = 30.0  # issue 10: "5 % random loss for 30 s in a three-party call"
CLEAN_SECONDS = 2.0
POLL_MS = 40
ROOM = "loss"
RULE = ["INPUT", "-p", "udp", "-m", "statistic", "--mode", "random"]
COUNTERS = ("nacks_received", "plis_received", "plis_sent", "loss_resyncs")

# In the page: for every inbound video stream, when framesDecoded last grew and the longest wait
# for it to grow since `measure()`; read by `result()`.
_WATCH = """
(pollMs) => {
  const w = globalThis;
  w.__freeze = {streams: {}, since: null};
  setInterval(async () => {
    const pc = w.sfuClient?.pc;
    if (!pc) return;
    const report = await pc.getStats();
    const now = performance.now();
    report.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      const f = (w.__freeze.streams[s.trackIdentifier] ??=
        {frames: 0, at: now, longest: 0, counted: 0});
      const frames = s.framesDecoded ?? 0;
      if (frames > f.frames) {
        if (w.__freeze.since !== null) {
          f.longest = Math.max(f.longest, now - Math.max(f.at, w.__freeze.since));
          f.counted += frames - f.frames;
        }
        f.frames = frames;
        f.at = now;
      }
    });
  }, pollMs);
}
"""
_MEASURE = "() => { globalThis.__freeze.since = performance.now(); }"
_RESULT = """
() => {
  const now = performance.now();
  const {streams, since} = globalThis.__freeze;
  return Object.values(streams).map((f) => ({
    longest: Math.max(f.longest, now - Math.max(f.at, since)) / 1000,
    frames: f.counted,
  }));
}
"""


def iptables(action: str) -> None:
    probability = ["--probability", str(LOSS), "-j", "DROP"]
    subprocess.run(["iptables", action, *RULE, *probability], check=True, capture_output=True)


class PythonReceiver:
    """A Python client in the call: publishes a test pattern, notes when each frame arrives."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.client = Client(url, ROOM, name=name, ice_addresses=["127.0.0.1"], decode=False)
        self.arrivals: dict[str, list[float]] = {}  # by publisher's peer id
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.client.on_track(self._on_track)
        await self.client.connect()
        await self.client.publish(TestPatternTrack(320, 240, fps=15))

    def _on_track(self, remote: RemoteTrack) -> None:
        if remote.kind == "video":
            times = self.arrivals.setdefault(remote.peer_id, [])
            self._tasks.append(asyncio.ensure_future(self._read(remote, times)))

    async def _read(self, remote: RemoteTrack, times: list[float]) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await remote.track.recv()
                times.append(time.monotonic())

    def seen(self, start: float, end: float) -> list[dict[str, float]]:
        out = []
        for times in self.arrivals.values():
            window = [start, *(t for t in times if start <= t <= end), end]
            longest = max(b - a for a, b in itertools.pairwise(window))
            out.append({"longest": longest, "frames": len(window) - 2})
        return out

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.client.close()


async def counters(port: int) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in COUNTERS:
            if line.startswith(f'aiosfu_{name}_total{{kind="video"}}'):
                out[name] = float(line.split()[-1])
    return out


async def call() -> dict[str, Any]:
    # As tests/conftest.py pins it: aiortc's encoder then sends keyframes only when asked.
    fixed = property(lambda self: 800_000, lambda self, value: None)
    vpx.Vp8Encoder.target_bitrate = fixed  # type: ignore[method-assign,assignment]
    async with ServerProcess() as server, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        pythons = [PythonReceiver(server.url, name) for name in ("py1", "py2")]
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            page = RoomPage(await context.new_page(), "chrome")
            await page.open(f"http://127.0.0.1:{server.port}/", ROOM, mic=False)
            for python in pythons:
                await python.start()
            await page.evaluate(f"() => ({_WATCH})({POLL_MS})")

            async def flowing() -> str:
                waiting = [p.name for p in pythons if len(p.arrivals) < 2]
                waiting += [p.name for p in pythons if any(len(t) < 5 for t in p.arrivals.values())]
                tiles = (await page.media())["tiles"].values()
                decoded = [t for t in tiles if (t["video"] or {}).get("framesDecoded", 0) > 5]
                if len(decoded) < 2:
                    waiting.append("chrome")
                return f"no video yet at {waiting}" if waiting else ""

            await eventually_async(flowing, 60)
            await asyncio.sleep(CLEAN_SECONDS)
            before = await counters(server.port)
            await page.evaluate(_MEASURE)
            start = time.monotonic()
            iptables("-A")
            try:
                await asyncio.sleep(LOSS_SECONDS)
                end = time.monotonic()
                chrome = await page.evaluate(_RESULT)
            finally:
                iptables("-D")
            after = await counters(server.port)
            return {
                "loss": LOSS,
                "seconds": LOSS_SECONDS,
                "chromium": chrome,
                **{p.name: p.seen(start, end) for p in pythons},
                "server": {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS},
            }
        finally:
            for python in pythons:
                await python.close()
            await browser.close()


def main(parent_namespace: str) -> None:
    # Only ever in a namespace made for this run: never the one the tests run in.
    if namespace_id() == parent_namespace:
        raise SystemExit("refusing: not a fresh network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    print(json.dumps(asyncio.run(call())))


if __name__ == "__main__":
    main(sys.argv[1])
