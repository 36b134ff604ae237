"""SimulcastTrack: a video the Python client publishes as simulcast layers (`l`, `m`, `h`).

What a browser does with `sendEncodings`: one m-line, one RTP stream per layer (its own SSRC,
named by RID), each encoded apart. aiortc cannot (one stream per sender), so the track given to
the sender is a placeholder that never yields a frame (aiortc's own stream stays silent) and
whose first `recv()` (aiortc calls it once the connection is up and the m-line negotiated) starts
one loop per layer: take the layer's next frame, encode it (or pack it, when it is already
encoded: an `av.Packet`, as loadtest.clip sends), and send it as that layer's RTP stream
(sfu.rtc.simulcast_send). A keyframe request for a layer's SSRC makes that layer's next frame a
keyframe (or calls its track's `request_keyframe()`, for pre-encoded layers). Each layer sends a
sender report a second.

    track = SimulcastTrack.scaled(TestPatternTrack(1280, 720))   # one source at 1/4, 1/2, 1
    track = SimulcastTrack({"l": clip_l, "m": clip_m, "h": clip_h})  # three sources
    await client.publish(track)

The layer tracks are the caller's; `stop()` stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from aiortc.codecs import get_encoder
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from .rtc import fastpath, rtcp
from .rtc.simulcast import LAYERS
from .rtc.simulcast_send import RtpStream

logger = logging.getLogger(__name__)

SCALES = {"l": 4, "m": 2, "h": 1}  # as the page's SIMULCAST_ENCODINGS
REPORT_INTERVAL = 1.0  # seconds between a layer's sender reports


class ScaledTrack(MediaStreamTrack):
    """Another track's frames, scaled down by an integer factor (even sizes, for yuv420p)."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, factor: int) -> None:
        super().__init__()
        self.source = source
        self.factor = factor

    async def recv(self) -> Any:
        frame: Any = await self.source.recv()
        if self.factor == 1:
            return frame
        width = max(2, frame.width // self.factor // 2 * 2)
        height = max(2, frame.height // self.factor // 2 * 2)
        scaled = frame.reformat(width=width, height=height)
        scaled.pts, scaled.time_base = frame.pts, frame.time_base
        return scaled


class SimulcastTrack(MediaStreamTrack):
    """The placeholder track of a simulcast publication (see the module doc)."""

    kind = "video"

    def __init__(self, layers: Mapping[str, MediaStreamTrack]) -> None:
        super().__init__()
        unknown = set(layers) - set(LAYERS)
        if unknown or len(layers) < 2:
            raise ValueError(f"simulcast layers are two or more of {LAYERS}, not {list(layers)}")
        self.layers = {rid: layers[rid] for rid in LAYERS if rid in layers}  # lowest first
        self.streams: dict[str, RtpStream] = {}
        self._transceiver: RTCRtpTransceiver | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._source: MediaStreamTrack | None = None
        self._stopped = asyncio.get_running_loop().create_future()

    @classmethod
    def scaled(cls, source: MediaStreamTrack, rids: tuple[str, ...] = LAYERS) -> SimulcastTrack:
        """One source, each layer a copy scaled down by SCALES[rid] (1/4, 1/2, 1). A layer
        that encodes slower than the source skips frames rather than falling behind."""
        relay = MediaRelay()
        track = cls(
            {rid: ScaledTrack(relay.subscribe(source, buffered=False), SCALES[rid]) for rid in rids}
        )
        track._source = source
        return track

    @property
    def rids(self) -> tuple[str, ...]:
        return tuple(self.layers)

    def attach(self, transceiver: RTCRtpTransceiver) -> None:
        """The transceiver that carries it (the Python client calls this when it offers)."""
        self._transceiver = transceiver
        rtcp.stop_sender_reports(transceiver.sender)  # its own stream sends nothing to report

    async def recv(self) -> Any:
        # aiortc's sender asks once it can send: start the layers, then never yield a frame.
        if not self._tasks and self._transceiver is not None and self.readyState == "live":
            self._start(self._transceiver)
        await asyncio.shield(self._stopped)
        raise MediaStreamError

    def _start(self, transceiver: RTCRtpTransceiver) -> None:
        codec = fastpath.negotiated_codec(transceiver)
        if codec is None or codec.payloadType is None or transceiver.mid is None:
            logger.warning("simulcast track %s: nothing negotiated to send", self.id)
            return
        for rid, track in self.layers.items():
            layer = _Layer(track, get_encoder(codec))
            stream = RtpStream(
                transceiver.sender,
                transceiver.mid,
                rid,
                codec.payloadType,
                codec.clockRate,
                on_keyframe=layer.keyframe_wanted,
            )
            self.streams[rid] = stream
            self._tasks.append(asyncio.ensure_future(layer.send(stream)))
        self._tasks.append(asyncio.ensure_future(self._report()))
        logger.debug("simulcast track %s: sending %s", self.id, " ".join(self.layers))

    async def _report(self) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(REPORT_INTERVAL)
                for stream in self.streams.values():
                    await stream.send_report()

    def stop(self) -> None:
        super().stop()
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        for stream in self.streams.values():
            stream.close()
        for layer in self.layers.values():
            layer.stop()
        if self._source is not None:
            self._source.stop()
        if not self._stopped.done():
            self._stopped.set_result(None)


@dataclass
class _Layer:
    """One layer's sending loop: its track, its encoder, and whether a keyframe is wanted."""

    track: MediaStreamTrack
    encoder: Any
    keyframe: bool = False

    def keyframe_wanted(self) -> None:
        request = getattr(self.track, "request_keyframe", None)
        if request is not None:
            request()  # a pre-encoded source jumps to its keyframe
        else:
            self.keyframe = True  # the next frame this layer encodes

    async def send(self, stream: RtpStream) -> None:
        # Every layer's timestamps come from the same origin: the source's pts, on the codec's
        # clock (aiortc's encoders convert), as one camera's layers do.
        with contextlib.suppress(MediaStreamError, ConnectionError):
            while True:
                frame = await self.track.recv()
                if isinstance(frame, av.Packet):
                    payloads, timestamp = self.encoder.pack(frame)
                else:
                    keyframe, self.keyframe = self.keyframe, False
                    payloads, timestamp = self.encoder.encode(frame, keyframe)
                if payloads:
                    await stream.send_frame(payloads, timestamp & 0xFFFFFFFF)
