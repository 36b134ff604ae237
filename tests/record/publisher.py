"""A publisher with sync marks in a process of its own, as a participant on another machine is.

    python -m tests.record.publisher URL ROOM NAME

prints `published` once the server took its tracks, and publishes until SIGTERM (it leaves the
room, and prints the frames it had no time to send, as JSON), SIGKILL, or the server goes away
(a test that failed leaves no publisher behind). Its own
event loop paces its media: in the tests' process, the in-process server and the browser's
driver would delay its sends, and aiortc's sender reports pair the time a frame is *sent* with
its timestamp.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from types import TracebackType

from sfu.client import Client
from tests.record.sync import sync_tracks

REPO = Path(__file__).resolve().parents[2]
READY = "published"


async def main(url: str, room: str, name: str) -> None:
    # What the others publish arrives too: left encoded (no decoder running for nothing).
    client = Client(url, room, name=name, ice_addresses=["127.0.0.1"], decode=False)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await client.connect()
    video, audio = sync_tracks()
    await client.publish(video, audio)
    print(READY, flush=True)
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, client.disconnected)]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for wait in waits:
        wait.cancel()
    await client.close()
    print(json.dumps({"video": video.skipped, "audio": audio.skipped}), flush=True)


class PublisherProcess:
    """`async with PublisherProcess(url, room, name):` publishes until the block ends."""

    def __init__(self, url: str, room: str, name: str) -> None:
        self.argv = [sys.executable, "-m", "tests.record.publisher", url, room, name]
        self.proc: asyncio.subprocess.Process | None = None
        self.skipped: dict[str, int] = {}  # frames it was too late to send, once stopped

    async def start(self) -> PublisherProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=REPO, stdout=asyncio.subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        assert line.decode().strip() == READY, f"the publisher said {line!r}"
        return self

    async def stop(self) -> None:
        """SIGTERM: it leaves the room."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.stdout is not None
                last = await asyncio.wait_for(self.proc.stdout.read(), 10)
                await asyncio.wait_for(self.proc.wait(), 10)
                self.skipped = json.loads(last.decode().strip().splitlines()[-1])
            except (TimeoutError, ValueError, IndexError):
                self.kill()
                await self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: it vanishes, whatever it was sending."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def __aenter__(self) -> PublisherProcess:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
