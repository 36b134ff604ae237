"""Publication: one track a participant sends to the server, and its fan-out (the Relay).

The publisher's receiver hands over encoded frames (sfu.rtc.receiver); one aiortc MediaRelay per
publication fans them out, so any aiortc consumer attaches with `subscribe()` (forwarding to a
subscriber, a recorder, a bot that decodes). Keyframe requests from all subscribers are
throttled here, per publication. Closed by its Participant; close() is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from signaling.log import ContextLogger, bind

from .keyframes import KeyframeThrottle
from .rtc import receiver as rtc_receiver

logger = logging.getLogger(__name__)


class Publication:
    def __init__(
        self,
        *,
        publisher_id: str,
        track: MediaStreamTrack,
        receiver: RTCRtpReceiver,
        sink: rtc_receiver.EncodedFrameSink,
        keyframe_interval: float,
        log: ContextLogger,
    ) -> None:
        self.publisher_id = publisher_id
        self.track = track
        self.id: str = track.id
        self.kind: str = track.kind
        self.receiver = receiver
        self.sink = sink
        self.relay = MediaRelay()
        self.keyframes = KeyframeThrottle(keyframe_interval)
        self.closed = False
        self.packets = 0  # RTP packets received from the publisher (read by metrics)
        self.bytes = 0
        self.log = bind(log, track=self.id[:8], kind=self.kind)
        self._loop = asyncio.get_running_loop()
        self._deferred: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drain = asyncio.ensure_future(self._read_always())

    async def _read_always(self) -> None:
        # MediaRelay reads its source only once a consumer has pulled a frame; until then the
        # receiver's frames would pile up (unbounded) and the first subscriber would get them
        # all in a burst, seconds late. A consumer of our own keeps the relay reading live.
        proxy = self.relay.subscribe(self.track, buffered=False)
        with contextlib.suppress(MediaStreamError):
            while True:
                await proxy.recv()

    def subscribe(self) -> MediaStreamTrack:
        """A new consumer of this publication's encoded frames (`av.Packet`s)."""
        return self.relay.subscribe(self.track, buffered=True)

    def request_keyframe(self) -> None:
        if self.closed or self.kind != "video":
            return
        delay = self.keyframes.request(self._loop.time())
        if delay is None:
            return
        if delay == 0.0:
            self._send_pli()
        else:
            self._deferred = self._loop.call_later(delay, self._fire_deferred)

    def _fire_deferred(self) -> None:
        self._deferred = None
        self.keyframes.fire(self._loop.time())
        self._send_pli()

    def _send_pli(self) -> None:
        task = asyncio.ensure_future(self._send_pli_now())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_pli_now(self) -> None:
        if self.closed:
            return
        if not await rtc_receiver.send_pli(self.receiver):
            # No media yet, so no SSRC to name: ask again once the window has passed.
            self.request_keyframe()
        else:
            self.log.debug("keyframe requested")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        for task in self._tasks:
            task.cancel()
        # Ending the source ends the relay and, through it, every subscription's track, even
        # when the receiver never started (and so will never end the track itself).
        rtc_receiver.end_track(self.receiver)
        self.log.info("unpublished")
