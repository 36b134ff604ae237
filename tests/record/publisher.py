"""A publisher process with sync marks, to be killed by a test:
`python -m tests.record.publisher URL ROOM NAME` publishes until it is killed."""

from __future__ import annotations

import asyncio
import sys

from sfu.client import Client
from tests.record.sync import sync_tracks


async def main(url: str, room: str, name: str) -> None:
    client = Client(url, room, name=name, ice_addresses=["127.0.0.1"])
    await client.connect()
    await client.publish(*sync_tracks())
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
