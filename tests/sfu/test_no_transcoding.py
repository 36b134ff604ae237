"""The server never decodes or re-encodes what it forwards.

The server runs as its own process under tests.codec_guard, which reports every encoder or
decoder aiortc constructs; a three-party call with audio and video must report none. (The
clients decode and encode, in this process: that is what makes the call real.)
"""

from __future__ import annotations

import contextlib
import io
import sys

from aiortc.codecs import get_encoder
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from loadtest.serverproc import ServerProcess
from sfu.client import Client
from sfu.media import TestPatternTrack
from tests import codec_guard
from tests.util import eventually, recv


async def test_a_three_party_call_creates_no_codec_on_the_server() -> None:
    guard = [sys.executable, "-m", "tests.codec_guard"]
    async with ServerProcess(argv_prefix=guard) as server:
        clients = [
            Client(server.url, "call", name=n, ice_addresses=["127.0.0.1"])
            for n in ("alice", "bob", "carol")
        ]
        try:
            for client in clients:
                await client.connect()
                await client.publish(TestPatternTrack(320, 240, fps=15), AudioStreamTrack())
            for client in clients:

                def all_tracks(client: Client = client) -> str:
                    n = len(client.remote_tracks)
                    return "" if n == 4 else f"{client.name} has {n} of 4 remote tracks"

                await eventually(all_tracks, timeout=15)
                for remote in client.remote_tracks.values():
                    await recv(remote.track)  # decoded here: it really was forwarded
        finally:
            for client in clients:
                await client.close()
        output = server.output()
    assert codec_guard.READY in output, output[-2000:]
    assert codec_guard.MARKER not in output, output[-4000:]


def test_the_guard_sees_a_codec_being_created() -> None:
    # The proof above is only as good as the guard: show it fires.
    wrapped = codec_guard.install()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            opus = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, payloadType=111)
            get_encoder(opus)
    finally:
        codec_guard.uninstall(wrapped)
    assert f"{codec_guard.MARKER}: OpusEncoder" in stderr.getvalue()
