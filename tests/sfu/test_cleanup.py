"""Nothing is left behind: 20 join/leave cycles return the process to its baseline."""

from __future__ import annotations

import asyncio
import gc
import os

from aiortc import RTCPeerConnection

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.rtc import relay as rtc_relay
from sfu.server import RunningServer
from tests.conftest import LOOPBACK, MakeClient
from tests.util import eventually, recv

CYCLES = 20


def udp_sockets() -> int:
    """UDP sockets this process holds open (from /proc: every ICE candidate is one)."""
    inodes: set[str] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as f:
                inodes.update(line.split()[9] for line in f.readlines()[1:])
        except FileNotFoundError:
            continue
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            count += 1
    return count


def snapshot(server: RunningServer) -> dict[str, int]:
    gc.collect()
    publications = [pub for p in server.backend.participants() for pub in p.publications.values()]
    return {
        "participants": len(server.backend.participants()),
        "peer connections": sum(isinstance(o, RTCPeerConnection) for o in gc.get_objects()),
        "relay proxies": sum(rtc_relay.proxy_count(pub.relay) for pub in publications),
        "asyncio tasks": len(asyncio.all_tasks()),
        "udp sockets": udp_sockets(),
    }


async def test_join_leave_cycles_leave_nothing_behind(
    server: RunningServer, make_client: MakeClient
) -> None:
    observer = await make_client("cycles", name="observer")
    await observer.publish(TestPatternTrack(160, 120, fps=15))
    baseline: dict[str, int] = {}

    for i in range(CYCLES + 1):
        client = Client(server.url, "cycles", name=f"visitor{i}", ice_addresses=LOOPBACK)
        await client.connect()
        await client.publish(TestPatternTrack(160, 120, fps=15))
        remote = await client.next_track()
        await recv(remote.track)
        from_visitor = await observer.next_track()
        await recv(from_visitor.track)
        await client.close()
        del client, remote
        await asyncio.wait_for(from_visitor.ended.wait(), 10)
        if i == 0:
            # The observer now holds one forwarded m-line, inactive (its receiver kept): each
            # later visitor's track takes it over. That is the baseline.
            await eventually(lambda: "" if snapshot(server)["participants"] == 1 else "leaving")
            for _ in range(20):  # settled: the same twice in a row, half a second apart
                baseline = snapshot(server)
                await asyncio.sleep(0.5)
                if snapshot(server) == baseline:
                    break
            assert baseline["relay proxies"] == 1  # the observer's publication's own reader

    def settled() -> str:
        now = snapshot(server)
        return "" if now == baseline else f"{now} != baseline {baseline}"

    await eventually(settled, timeout=15, interval=0.2)
