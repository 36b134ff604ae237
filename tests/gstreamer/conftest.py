"""GStreamer webrtcbin peers (tests/gstreamer/peer.py, run by the system Python with `gi`) against
an in-process server. `make test` installs the GStreamer packages when they are missing; without
them these tests are skipped, except under CI, where that is a failure."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sfu.server import RunningServer
from tests.gstreamer.gstpeer import GstPeer, gstreamer_missing

StartGstPeer = Callable[..., Awaitable[GstPeer]]


@pytest.fixture
async def gst_peer(server: RunningServer) -> AsyncIterator[StartGstPeer]:
    if reason := gstreamer_missing():
        message = f"{reason}: `make test` installs Debian's GStreamer packages (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    peers: list[GstPeer] = []

    async def start(room: str, name: str, *, publish: bool = False) -> GstPeer:
        peer = await GstPeer.start(server.url, room, name, publish=publish)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.close()
