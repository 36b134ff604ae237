"""Recording through packet loss, in a network namespace of its own: run by
tests/record/test_loss.py as `unshare --net -- python -m tests.record.loss_scenario PARENT_NS OUT`,
it prints what the file holds as JSON.

A server process, `aiosfu record` and a publisher with sync marks (processes of their own) on
127.0.0.1; after 2 s of clean recording, iptables drops LOSS of all UDP (media both ways: the
publisher's to the server, the server's to the recorder) for LOSS_SECONDS, then clean again for
2 s. Lost video comes back by NACK (the server answers from its ring, and asks the publisher
for what it lost itself); lost Opus does not (no NACK for audio).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

from loadtest.netns import namespace_id
from loadtest.recorderproc import RecorderProcess
from loadtest.serverproc import ServerProcess
from tests.record.publisher import PublisherProcess
from tests.record.test_container import read
from tests.util import eventually

LOSS = 0.05
LOSS_SECONDS = 8.0
RULE = ["INPUT", "-p", "udp", "-m", "statistic", "--mode", "random"]


def iptables(action: str) -> None:
    probability = ["--probability", str(LOSS), "-j", "DROP"]
    subprocess.run(["iptables", action, *RULE, *probability], check=True, capture_output=True)


async def record(out: Path) -> None:
    async with (
        ServerProcess() as server,
        RecorderProcess(server.url, "loss", out) as recorder,
        PublisherProcess(server.url, "loss", "alice"),
    ):
        await eventually(lambda: "" if recorder.events("file_opened") else "no file", 20)
        await asyncio.sleep(2)
        iptables("-A")
        try:
            await asyncio.sleep(LOSS_SECONDS)
        finally:
            iptables("-D")
        await asyncio.sleep(2)


def main(parent_namespace: str, out: Path) -> None:
    # Only ever in a namespace made for this run: never the one the tests run in.
    if namespace_id() == parent_namespace:
        raise SystemExit("refusing: not a fresh network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    asyncio.run(record(out))
    (path,) = out.iterdir()
    times = read(path)  # raises on a decode error
    gaps = {kind: max(b - a for a, b in itertools.pairwise(t)) for kind, t in times.items()}
    frames = {kind: len(t) for kind, t in times.items()}
    ends = {kind: max(t) for kind, t in times.items()}
    print(json.dumps({"gaps": gaps, "frames": frames, "ends": ends}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
