"""Recorder: a bot that records a room, one file per participant, and keeps at it.

It is a Python client like any other (sfu.client, `decode=False`, `role="recorder"`): it
records any aiosfu server it can reach, from any machine. Each forwarded track's encoded frames
go to its publisher's ParticipantRecording (sfu.record.participant), which writes the files.

`run()` joins, records until the session is lost (the server went away, the network dropped,
the media connection failed), finishes every file, and joins again with a backoff, in new files;
until `stop()`, which finishes every file and returns. A join the server refuses (a bad token)
ends `run()` with RecorderError: trying again would not help. `record(client)` records what an
already-connected client receives, for a bot that does more than record.

`select(remote, name)` chooses what to record (e.g. one participant, or audio only); tracks it
declines are read and dropped, since a track nobody reads queues its frames for ever.
Events (`on_event`): connecting, connected, disconnected, file_opened, file_closed, stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiortc.mediastreams import MediaStreamError

from sfu.client import Client, ClientError, ClientState, RemoteTrack, StateChange
from signaling.log import bind

from .participant import SETTLE, FileStatus, ParticipantRecording, TrackRecording

logger = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 0.25  # seconds between looks at files waiting for their tracks
RETRY_FIRST, RETRY_MAX = 0.5, 10.0  # backoff between joins, seconds (doubling, +-20 %)

Select = Callable[[RemoteTrack, str | None], bool]


class RecorderError(Exception):
    """The server refused the recorder (e.g. its token): retrying would not help."""


@dataclass(frozen=True)
class RecorderEvent:
    type: str
    time: float  # time.time()
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        when = datetime.datetime.fromtimestamp(self.time, datetime.UTC)
        return {"event": self.type, "time": when.isoformat(timespec="milliseconds"), **self.data}


class Recorder:
    def __init__(
        self,
        url: str,
        room: str,
        directory: Path | str,
        *,
        token: str | None = None,
        name: str = "recorder",
        select: Select | None = None,
        ice_addresses: Sequence[str] | None = None,
        on_event: Callable[[RecorderEvent], None] | None = None,
        reconnect: bool = True,
        settle: float = SETTLE,
    ) -> None:
        self.url = url
        self.room = room
        self.directory = Path(directory)
        self.token = token
        self.name = name
        self.select = select
        self.ice_addresses = ice_addresses
        self.on_event = on_event
        self.reconnect = reconnect
        self.settle = settle
        self.sessions = 0  # joins that succeeded
        self.files: list[FileStatus] = []  # finished files, oldest first
        self.log = bind(logger, room=room)
        self._stopping = asyncio.Event()
        self._participants: dict[str, ParticipantRecording] = {}
        self._requests: set[asyncio.Future[bool]] = set()  # keyframe requests on their way

    # --- running ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish every file and make run() / record() return (safe from a signal handler)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        failures = 0
        while not self.stopping:
            client = Client(
                self.url,
                self.room,
                name=self.name,
                token=self.token,
                ice_addresses=self.ice_addresses,
                decode=False,
                role="recorder",
            )
            self._emit("connecting", url=self.url, room=self.room, attempt=failures + 1)
            try:
                await client.connect()
            except ClientError as exc:
                await client.close()
                self._emit("failed", reason=str(exc))
                raise RecorderError(f"the server refused to let us join: {exc}") from None
            except (OSError, ConnectionError, aiohttp.ClientError, TimeoutError) as exc:
                await client.close()
                reason = f"cannot join: {exc or type(exc).__name__}"
            else:
                failures = 0
                reason = await self.record(client)
                await client.close()
            if self.stopping or not self.reconnect:
                break
            delay = min(RETRY_MAX, RETRY_FIRST * 2**failures) * random.uniform(0.8, 1.2)
            failures += 1
            self._emit("disconnected", reason=reason, retry_in=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._emit("stopped", files=len(self.files))

    async def record(self, client: Client) -> str:
        """Record what this connected client receives until its session ends or stop();
        every file is finished on return. Returns why it ended."""
        if client.decode:
            raise ValueError("the recorder needs a Client(decode=False): it stores encoded frames")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sessions += 1
        self._emit("connected", peer_id=client.peer_id, room=client.room)
        readers: set[asyncio.Task[None]] = set()

        def on_track(remote: RemoteTrack) -> None:
            task = asyncio.ensure_future(self._read(client, remote))
            readers.add(task)
            task.add_done_callback(readers.discard)

        def on_state(change: StateChange) -> None:
            # The client recovers by itself (sfu.client, "Recovery"): a resumed session keeps
            # its tracks and files; a fresh one ends them and brings new tracks, in new files.
            if (
                change.state is ClientState.RECONNECTING
                and change.previous is ClientState.CONNECTED
            ):
                self._emit("disconnected", reason=change.reason or "reconnecting", retry_in=None)
            elif (
                change.state is ClientState.CONNECTED
                and change.previous is ClientState.RECONNECTING
            ):
                self.sessions += 1
                self._emit("connected", peer_id=client.peer_id, room=client.room)

        client.on_track(on_track)
        client.on_state(on_state)
        for remote in list(client.remote_tracks.values()):  # any that came before on_track
            if not remote.ended.is_set():
                on_track(remote)
        stopping = asyncio.ensure_future(self._stopping.wait())
        lost = asyncio.ensure_future(client.disconnected.wait())
        try:
            while not (stopping.done() or lost.done()):
                await asyncio.wait({stopping, lost}, timeout=CHECK_INTERVAL)
                now = time.time()
                for participant in list(self._participants.values()):
                    participant.check(now)
            reason = "stopped" if stopping.done() else client.disconnect_reason or "disconnected"
        finally:
            for task in (stopping, lost, *readers):
                task.cancel()
            await asyncio.gather(stopping, lost, *readers, return_exceptions=True)
            self._finish_all("stopped" if self.stopping else "disconnected")
        return reason

    async def _read(self, client: Client, remote: RemoteTrack) -> None:
        name = client.participants.get(remote.peer_id)
        track: TrackRecording | None = None
        participant: ParticipantRecording | None = None
        if self.select is None or self.select(remote, name):
            participant = self._participant(client, remote.peer_id, name)
            track = participant.add(remote)
            if track is not None and remote.kind == "video":
                # Simulcast: the top layer (a track without layers keeps its one). Until `h`
                # flows the server sends the best layer that does: the file changes size then.
                try:
                    await client.set_layer(remote, "h")
                except (ConnectionError, RuntimeError) as exc:
                    self.log.info("could not ask for the top layer: %s", exc)
        try:
            while True:
                packet = await remote.track.recv()
                if participant is not None and track is not None:
                    participant.frame(track, packet, time.time())
        except MediaStreamError:
            pass  # the track ended: its publisher left or unpublished it
        if participant is not None and track is not None:
            if client.state is not ClientState.CONNECTED:
                reason = "disconnected"  # ended by a fresh rejoin: the old session is gone
            else:
                reason = "left" if remote.peer_id not in client.participants else "unpublished"
            participant.end(track, reason)
            if not participant.live:
                self._participants.pop(remote.peer_id, None)

    def _participant(self, client: Client, peer_id: str, name: str | None) -> ParticipantRecording:
        participant = self._participants.get(peer_id)
        if participant is None:

            def request_keyframe(remote: RemoteTrack) -> None:
                task = asyncio.ensure_future(client.request_keyframe(remote))
                self._requests.add(task)
                task.add_done_callback(self._requests.discard)

            participant = ParticipantRecording(
                peer_id,
                name,
                self.directory,
                self._emit,
                request_keyframe,
                finished=self.files,
                settle=self.settle,
            )
            self._participants[peer_id] = participant
        return participant

    def _finish_all(self, reason: str) -> None:
        participants, self._participants = list(self._participants.values()), {}
        for participant in participants:
            participant.close(reason)

    # --- status and events --------------------------------------------------------------------

    def status(self) -> list[FileStatus]:
        """The files being written now."""
        return [s for p in self._participants.values() if (s := p.status()) is not None]

    def _emit(self, type_: str, **data: Any) -> None:
        event = RecorderEvent(type_, time.time(), data)
        self.log.debug("%s %s", type_, data)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                self.log.exception("event callback failed on %s", type_)
