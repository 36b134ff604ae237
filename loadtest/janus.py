"""Janus VideoRoom as the reference SFU: its process, and aiortc peers that speak its API.

    async with JanusProcess(JanusSettings(event_loops=2)) as janus:      # inside our namespace
        publisher = await JanusPublisher.start(janus.url, track)
        subscriber = await join_janus_subscriber(janus.url, publisher.feed, "sub0")

`JanusProcess` runs Debian's `janus` (1.1.x) with a configuration folder generated under a
temporary directory (never /etc/janus): only `libjanus_videoroom.so` and
`libjanus_websockets.so` are loaded (the plugin and transport folders hold nothing else), the
WebSocket API listens on 127.0.0.1 only, no STUN/TURN/NAT setting exists, mDNS candidates are
ignored, IPv6 is off and RTP uses a fixed port range. `event_loops = 2`: stock Janus runs one
thread per handle and pays for the wake-ups; two shared loops on a 2-core machine is the fair
reference (shared/testing.md).

It must run inside the benchmark's own namespace (loadtest.netns): Janus refuses to gather on
loopback interfaces, and the veth pair that namespace holds is what lets it offer 127.0.0.1.

The peers speak the Janus API, JSON over one WebSocket per peer (subprotocol `janus-protocol`):
`create` a session, `attach` to `janus.plugin.videoroom`, then

- publisher: `join` (ptype publisher), `publish` with the JSEP offer, apply the answer, wait for
  `webrtcup`;
- subscriber: `join` (ptype subscriber, `streams: [{feed}]`), which returns Janus's offer (its
  candidates inside: half-trickle), answer it, `start`.

Simulcast: a publisher's `SimulcastTrack` (sfu.simulcast_source) goes out as aiosfu's Python
client sends it, RIDs l, m, h listed lowest first (`rid_order: "lmh"` tells Janus so); a
subscriber picks its layer with `configure` and a `substream` (0 = l, 1 = m, 2 = h).

aiortc puts all its candidates in its SDP, so each peer sends one trickle `completed` after its
SDP. Every session sends a `keepalive` every 25 s (Janus drops a session after 60 s of silence).
Each aiortc peer has an explicit empty ICE server list (aiortc would otherwise use a public STUN
server) and gathers on 127.0.0.1 only; subscribers never decode (encoded frames are captured
before any decoder).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import itertools
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)

from sfu.rtc import receiver as rtc_receiver
from sfu.rtc.ice import set_ice_addresses
from sfu.rtc.simulcast import install as install_simulcast
from sfu.rtc.simulcast_send import describe_send
from sfu.simulcast_source import SimulcastTrack

from .child import ChildProcess
from .stats import receiver_of

HOST = "127.0.0.1"
PLUGIN = "janus.plugin.videoroom"
PROTOCOL = "janus-protocol"
KEEPALIVE_INTERVAL = 25.0  # Janus's session_timeout is 60 s
PLUGIN_FILE = "libjanus_videoroom.so"
TRANSPORT_FILE = "libjanus_websockets.so"


class JanusError(RuntimeError):
    """Janus answered a request with an error (core or plugin)."""


def janus_binary() -> str | None:
    """Where Debian's package puts the server, or None when it is not installed."""
    found = shutil.which("janus")
    candidates = ("/usr/bin/janus", "/usr/sbin/janus")  # sbin is not on every PATH
    return found or next((p for p in candidates if os.access(p, os.X_OK)), None)


def janus_library_dir() -> Path | None:
    """/usr/lib/<multiarch>/janus, which holds plugins/ and transports/."""
    for path in sorted(glob.glob(f"/usr/lib/*/janus/plugins/{PLUGIN_FILE}")):
        return Path(path).parents[1]
    return None


def janus_version() -> str:
    binary = janus_binary()
    if binary is None:
        return "not installed"
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("Janus version:"):
            return line.split("(")[-1].rstrip(")")  # "Janus version: 1102 (1.1.2)"
    return "unknown"


@dataclass(frozen=True)
class JanusSettings:
    event_loops: int = 2
    ws_port: int = 8188
    rtp_port_range: str = "20000-40000"
    room: int = 1234
    debug_level: int = 4  # Janus's own default (aiosfu logs at INFO too)


def config_files(settings: JanusSettings, folder: Path) -> dict[str, str]:
    """The configuration Janus reads, by file name. Everything not set is Janus's default."""
    jcfg = f"""\
general: {{
\tconfigs_folder = "{folder}"
\tplugins_folder = "{folder / "plugins"}"
\ttransports_folder = "{folder / "transports"}"
\tevents_folder = "{folder / "none"}"
\tloggers_folder = "{folder / "none"}"
\tdebug_level = {settings.debug_level}
\tevent_loops = {settings.event_loops}
\tserver_name = "aiosfu-bench"
}}
certificates: {{
}}
media: {{
\tipv6 = false
\trtp_port_range = "{settings.rtp_port_range}"
}}
nat: {{
\tnice_debug = false
\tignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
\tbroadcast = false
}}
"""
    websockets = f"""\
general: {{
\tjson = "plain"
\tws = true
\tws_port = {settings.ws_port}
\tws_ip = "{HOST}"
\twss = false
}}
admin: {{
\tadmin_ws = false
\tadmin_wss = false
}}
"""
    # One publisher, no bitrate cap (REMB would not change a pre-encoded clip anyway), no
    # periodic keyframe requests (aiosfu sends none either): keyframes come only on demand.
    videoroom = f"""\
general: {{
}}
room-{settings.room}: {{
\tdescription = "bench"
\tpublishers = 1
\tbitrate = 0
\tfir_freq = 0
\tvideocodec = "vp8"
\taudiocodec = "opus"
\trecord = false
}}
"""
    return {
        "janus.jcfg": jcfg,
        "janus.transport.websockets.jcfg": websockets,
        "janus.plugin.videoroom.jcfg": videoroom,
    }


def write_config(settings: JanusSettings, folder: Path) -> Path:
    """Write the configuration folder; returns the path of janus.jcfg."""
    libdir = janus_library_dir()
    if libdir is None:
        raise FileNotFoundError(f"no {PLUGIN_FILE} under /usr/lib/*/janus (apt install janus)")
    for sub, name in (("plugins", PLUGIN_FILE), ("transports", TRANSPORT_FILE)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / sub / name).symlink_to(libdir / sub / name)
    (folder / "none").mkdir(exist_ok=True)
    for name, text in config_files(settings, folder).items():
        (folder / name).write_text(text)
    return folder / "janus.jcfg"


class JanusProcess(ChildProcess):
    """Janus with its own configuration folder; the CPU and memory readings of its process."""

    name = "Janus"

    def __init__(
        self,
        settings: JanusSettings | None = None,
        startup_timeout: float = 15.0,
        cpus: AbstractSet[int] | None = None,
    ) -> None:
        self.settings = settings or JanusSettings()
        self.startup_timeout = startup_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        super().__init__(cpus)  # pinned at the spawn, and again once it listens

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.settings.ws_port}"

    @property
    def config_dir(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("Janus is not started")
        return Path(self._tmp.name)

    async def start(self) -> JanusProcess:
        binary = janus_binary()
        if binary is None:
            raise FileNotFoundError("janus is not installed (apt-get install -y janus)")
        self._tmp = tempfile.TemporaryDirectory(prefix="aiosfu-janus-")
        jcfg = write_config(self.settings, self.config_dir)
        argv = [binary, "-F", str(self.config_dir), "-C", str(jcfg), "--disable-colors"]
        await self._spawn(argv)
        return self

    async def _wait_ready(self) -> None:  # it listens on its WebSocket port
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if (rc := self.returncode) is not None:
                raise RuntimeError(f"janus exited with status {rc}:\n{self.output()[-4000:]}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex((HOST, self.settings.ws_port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"janus did not listen on {self.url} within {self.startup_timeout}s:\n"
                    f"{self.output()[-4000:]}"
                )
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (Janus shuts down cleanly), SIGKILL if it lingers; then its config folder."""
        returncode = await super().stop(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        return returncode


# --- the Janus API over WebSocket -------------------------------------------------------------


class JanusSession:
    """One WebSocket, one Janus session: requests by transaction, events by handle."""

    _transactions = itertools.count(1)

    def __init__(self, url: str) -> None:
        self.url = url
        self.session_id: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], bool]] = {}
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}

    async def open(self, timeout: float = 10.0) -> None:
        self._http = aiohttp.ClientSession()
        self._ws = await asyncio.wait_for(
            self._http.ws_connect(self.url, protocols=(PROTOCOL,)), timeout
        )
        self._reader = asyncio.ensure_future(self._read())
        reply = await self.request({"janus": "create"}, timeout=timeout)
        self.session_id = int(reply["data"]["id"])
        self._keepalive = asyncio.ensure_future(self._keep_alive())

    async def attach(self, timeout: float = 10.0) -> int:
        reply = await self.request({"janus": "attach", "plugin": PLUGIN}, timeout=timeout)
        handle = int(reply["data"]["id"])
        self._events.setdefault(handle, asyncio.Queue())
        return handle

    async def message(
        self,
        handle: int,
        body: dict[str, Any],
        jsep: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """A plugin request; returns the plugin's reply (its `event` or `success`)."""
        payload: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            payload["jsep"] = jsep
        reply = await self.request(payload, past_ack=True, timeout=timeout)
        data = reply.get("plugindata", {}).get("data", {})
        if "error" in data or "error_code" in data:
            raise JanusError(f"{body.get('request')}: {data.get('error_code')} {data.get('error')}")
        return reply

    async def trickle_completed(self, handle: int) -> None:
        await self.request(
            {"janus": "trickle", "handle_id": handle, "candidate": {"completed": True}}
        )

    async def wait_event(self, handle: int, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next asynchronous event of this `janus` kind (e.g. webrtcup) on a handle."""
        queue = self._events.setdefault(handle, asyncio.Queue())

        async def next_of_kind() -> dict[str, Any]:
            while True:
                event = await queue.get()
                if event.get("janus") == kind:
                    return event
                if event.get("janus") == "hangup":
                    raise JanusError(f"hangup while waiting for {kind}: {event.get('reason')}")

        return await asyncio.wait_for(next_of_kind(), timeout)

    async def request(
        self, payload: dict[str, Any], *, past_ack: bool = False, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send one request; its reply (for a plugin message, the one after Janus's ack)."""
        assert self._ws is not None, "not connected"
        transaction = f"t{next(self._transactions)}"
        message = {**payload, "transaction": transaction}
        if self.session_id is not None and payload.get("janus") != "create":
            message["session_id"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (future, past_ack)
        try:
            await self._ws.send_str(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(transaction, None)
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(f"{payload['janus']}: {error.get('code')} {error.get('reason')}")
        return reply

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message: dict[str, Any] = json.loads(frame.data)
                transaction = message.get("transaction")
                pending = self._pending.get(transaction) if transaction else None
                if pending is not None:
                    future, past_ack = pending
                    if not (past_ack and message.get("janus") == "ack") and not future.done():
                        future.set_result(message)
                    continue
                sender = message.get("sender")
                if isinstance(sender, int):
                    self._events.setdefault(sender, asyncio.Queue()).put_nowait(message)
        finally:
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("Janus closed the WebSocket"))

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_INTERVAL)
            try:
                await self.request({"janus": "keepalive"})
            except (ConnectionError, TimeoutError, JanusError):
                return

    async def close(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self._ws is not None and not self._ws.closed and self.session_id is not None:
            with contextlib.suppress(Exception):
                await self.request({"janus": "destroy"}, timeout=2.0)
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()


def peer_connection() -> RTCPeerConnection:
    """An aiortc peer for Janus: no ICE server at all, max-bundle, gathering on 127.0.0.1."""
    set_ice_addresses([HOST])
    install_simulcast()  # the RID header extensions negotiated, as aiosfu's own peers do
    return RTCPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    )


def _jsep(pc: RTCPeerConnection) -> dict[str, str]:
    description = pc.localDescription
    return {"type": description.type, "sdp": description.sdp}


class JanusPublisher:
    """Publishes one video track into the room; `feed` is its Janus publisher id."""

    def __init__(self, session: JanusSession, handle: int, pc: RTCPeerConnection) -> None:
        self.session = session
        self.handle = handle
        self.pc = pc
        self.feed = 0
        self.sender: RTCRtpSender | None = None

    @classmethod
    async def start(
        cls,
        url: str,
        track: MediaStreamTrack,
        *,
        room: int = JanusSettings.room,
        timeout: float = 15.0,
    ) -> JanusPublisher:
        session = JanusSession(url)
        pc = peer_connection()
        try:
            await session.open()
            handle = await session.attach()
            self = cls(session, handle, pc)
            joined = await session.message(
                handle, {"request": "join", "ptype": "publisher", "room": room, "display": "pub"}
            )
            self.feed = int(joined["plugindata"]["data"]["id"])
            transceiver = pc.addTransceiver(track, direction="sendonly")
            self.sender = transceiver.sender
            await pc.setLocalDescription(await pc.createOffer())
            jsep: dict[str, Any] = _jsep(pc)
            if isinstance(track, SimulcastTrack):
                track.attach(transceiver)
                assert transceiver.mid is not None
                jsep["sdp"] = describe_send(jsep["sdp"], {transceiver.mid: track.rids})
                jsep["rid_order"] = "lmh"
            reply = await session.message(handle, {"request": "publish"}, jsep=jsep)
            answer = reply.get("jsep")
            if answer is None:
                raise JanusError(f"publish: no JSEP answer in {reply}")
            await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            await session.trickle_completed(handle)
            await session.wait_event(handle, "webrtcup", timeout)
        except BaseException:
            await pc.close()
            await session.close()
            raise
        return self

    async def close(self) -> None:
        await self.pc.close()
        await self.session.close()


@dataclass
class JanusSubscription:
    """What a subscriber join gives: its session, peer connection and the video receiver."""

    session: JanusSession
    handle: int
    pc: RTCPeerConnection
    receiver: RTCRtpReceiver
    track: MediaStreamTrack
    mid: str = "0"  # its video m-line's

    async def set_substream(self, substream: int, timeout: float = 15.0) -> None:
        """Receive this simulcast layer of the feed (0 = l, 1 = m, 2 = h)."""
        body = {"request": "configure", "streams": [{"mid": self.mid, "substream": substream}]}
        await self.session.message(self.handle, body, timeout=timeout)

    async def close(self) -> None:
        await self.pc.close()
        await self.session.close()


async def subscribe(
    url: str, feed: int, *, room: int = JanusSettings.room, timeout: float = 15.0
) -> JanusSubscription:
    """Join as a subscriber to `feed`, answer Janus's offer, `start`: the media then flows."""
    session = JanusSession(url)
    pc = peer_connection()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        rtc_receiver.capture_encoded_frames(receiver_of(pc, track))  # never decode

    try:
        await session.open()
        handle = await session.attach()
        reply = await session.message(
            handle,
            {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]},
            timeout=timeout,
        )
        offer = reply.get("jsep")
        if offer is None:
            raise JanusError(f"subscriber join: no JSEP offer in {reply}")
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await session.message(handle, {"request": "start"}, jsep=_jsep(pc), timeout=timeout)
        await session.trickle_completed(handle)
        video = [t for t in pc.getTransceivers() if t.kind == "video" and t.receiver.track]
        if len(video) != 1:
            raise JanusError(f"expected one video m-line in Janus's offer, got {len(video)}")
        receiver = video[0].receiver
        return JanusSubscription(session, handle, pc, receiver, receiver.track, video[0].mid or "0")
    except BaseException:
        await pc.close()
        await session.close()
        raise


def describe_config(settings: JanusSettings) -> str:
    """The settings that matter, for the report."""
    return (
        f"janus {janus_version()}, event_loops = {settings.event_loops}, "
        f"only {PLUGIN_FILE} + {TRANSPORT_FILE}, WebSocket on {HOST}:{settings.ws_port}, "
        f"rtp_port_range {settings.rtp_port_range}, ignore_mdns, ipv6 off, no STUN/TURN/NAT, "
        f"room: 1 publisher, vp8, bitrate 0 (no cap), fir_freq 0, debug_level "
        f"{settings.debug_level}"
    )
