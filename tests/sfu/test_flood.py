"""A flood against the real server: one joined client sends 10,000 messages as fast as it can.

It gets one `rate_limited` and is cut off (1008), while two others keep receiving a third's
video. The test prints the others' signaling round trips (ping/pong) before and during the flood,
p50/p99: a figure for reports (`pytest -s`), not an assertion, since the machine is shared.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from sfu.media import TestPatternTrack
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.util import recv

FLOOD = 10_000


async def test_a_flooder_is_cut_off_and_the_others_keep_their_media(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("flood", name="alice")
    await alice.publish(TestPatternTrack(160, 120, fps=30))
    watchers = [await make_client("flood", name=name) for name in ("bob", "carol")]
    tracks = [(await w.next_track()).track for w in watchers]
    for track in tracks:
        await recv(track)

    frames = [0, 0]
    rtts: dict[str, list[float]] = {"before": [], "during": []}
    phase = "before"

    # The loops stop on an event, not by cancellation: Python 3.11's wait_for (in recv() and
    # ping()) swallows a cancel that comes as its result arrives, and the loop would go on.
    stop = asyncio.Event()

    async def watch(i: int) -> None:
        while not stop.is_set():
            await recv(tracks[i], 5)
            frames[i] += 1

    async def ping_loop() -> None:
        while not stop.is_set():
            for watcher in watchers:
                rtts[phase].append(await watcher.ping())
            await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(watch(i)) for i in range(2)]
    tasks.append(asyncio.create_task(ping_loop()))
    try:
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as http, http.ws_connect(server.url) as ws:
            await ws.send_json({"type": "join", "room": "flood", "name": "mallory"})
            assert (await asyncio.wait_for(ws.receive_json(), 5))["type"] == "welcome"
            phase, before = "during", list(frames)
            started = time.monotonic()
            sent = 0
            for i in range(FLOOD):
                if ws.closed:
                    break
                try:
                    await ws.send_str(f'{{"type":"ping","id":{i}}}')
                except ConnectionError:
                    break
                sent += 1
            codes: list[str] = []
            async for msg in ws:  # what came back, until the server closed the socket
                if msg.type == aiohttp.WSMsgType.TEXT and '"error"' in msg.data:
                    codes.append(msg.json()["code"])
            flood_seconds = time.monotonic() - started
            assert ws.close_code == 1008, ws.close_code
        assert codes == ["rate_limited"], codes
        await asyncio.sleep(1.0)  # and the others go on
        after = list(frames)
    finally:
        stop.set()
        await asyncio.wait(tasks, timeout=10)
    for task in tasks:
        assert task.done() and not task.cancelled() and task.exception() is None, task

    assert all(n > b for n, b in zip(after, before, strict=True)), (before, after)
    assert all(not w.errors for w in watchers)
    assert len(server.backend.participants()) == 3  # mallory is gone, the call is whole

    def pct(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else 0.0

    print(
        f"\nflood: {sent} frames sent in {flood_seconds:.2f}s before the cut; others' ping RTT "
        f"before p50 {pct(rtts['before'], 50):.1f} ms p99 {pct(rtts['before'], 99):.1f} ms "
        f"({len(rtts['before'])}), during p50 {pct(rtts['during'], 50):.1f} ms "
        f"p99 {pct(rtts['during'], 99):.1f} ms ({len(rtts['during'])}); video frames "
        f"{before} -> {after}"
    )
