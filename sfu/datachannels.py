"""DataChannels: one participant's data channels with the server, and what it sends on them.

A client opens its data channels on its one peer connection with the server (docs/protocol.md,
"Data channels"): `reliable` (ordered, retransmitted: chat, state) and `lossy` (unordered, never
retransmitted: cursors, telemetry), LiveKit's two kinds. Each message a client sends is a
protocol.DataSend (JSON text). The server checks it, in this order: the `data` grant, its size,
the participant's rate (the same token buckets and flood rule as signaling frames,
signaling.ratelimit), its shape; then the room relays it (Room.relay_data), the sender attached,
on the channel of the same kind of each participant it is for (everyone else in the room, or
the peer ids in `to`) that has one open. A refused message reaches nobody; the sender's client
hears why on its WebSocket (`error`: data_not_allowed, data_too_large, data_rate_limited (once
per flood), bad_data), and the limit is counted.

Everything runs in aiortc's message callback, synchronously: the payload is never parsed
(msgspec.Raw), and the relayed message is encoded once for all its receivers. A receiver whose
channel already holds BACKLOG bytes it has not taken (a slow link, a stalled client) misses
messages rather than have the server hold them for it (counted as dropped). Channels with
another label are left alone: nothing is relayed from or to them.

Counters go to the room's `data_counts` (read by metrics), keyed (counter, channel kind).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from aiortc import RTCDataChannel

from signaling.backend import DataRefused, Grants
from signaling.limits import Limits
from signaling.protocol import DataSend, ErrorCode, ProtocolError, decode_data
from signaling.ratelimit import FrameLimiter, Verdict

KINDS = ("reliable", "lossy")
# Bytes a receiver's channel may hold unsent before it misses messages: a few seconds of a
# busy chat on the reliable one, a handful of messages on the lossy one (stale anyway).
BACKLOG = {"reliable": 1024 * 1024, "lossy": 64 * 1024}
# At most one data_not_allowed error per this many seconds: each would feed a flood.
REFUSAL_INTERVAL = 1.0

Relay = Callable[[str, DataSend], None]


class DataChannels:
    def __init__(
        self,
        limits: Limits,
        grants: Grants,
        counts: Counter[tuple[str, str]],
        *,
        relay: Relay,
        refuse: Callable[[DataRefused], None],
    ) -> None:
        self.channels: dict[str, RTCDataChannel] = {}  # by kind, once the client opened them
        self._limits = limits
        self._grants = grants
        self._counts = counts
        self._relay = relay
        self._refuse = refuse
        self._limiter: FrameLimiter | None = None
        if limits.data_rate or limits.data_byte_rate:
            self._limiter = FrameLimiter(
                rate=limits.data_rate,
                burst=limits.data_burst,
                byte_rate=limits.data_byte_rate,
                byte_burst=limits.data_byte_burst,
                flood_frames=1 << 62,  # a data flood is dropped, never cut off
                flood_seconds=float("inf"),
            )
        self._refused_at = -REFUSAL_INTERVAL

    def attach(self, channel: RTCDataChannel) -> None:
        """A channel the client opened (the peer connection's `datachannel` event)."""
        kind = channel.label
        if kind not in KINDS or kind in self.channels:
            return
        self.channels[kind] = channel
        channel.on("message", lambda message: self._on_message(kind, message))
        channel.on("close", lambda: self._closed(kind, channel))

    def _closed(self, kind: str, channel: RTCDataChannel) -> None:
        if self.channels.get(kind) is channel:
            del self.channels[kind]

    def deliver(self, kind: str, message: str) -> None:
        """Send one relayed message on this participant's channel of `kind`, if it has one."""
        channel = self.channels.get(kind)
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > BACKLOG[kind]:
            self._counts["dropped", kind] += 1
            return
        channel.send(message)
        self._counts["delivered", kind] += 1

    def close(self) -> None:
        self.channels.clear()

    def _on_message(self, kind: str, message: str | bytes) -> None:
        self._counts["received", kind] += 1
        try:
            self._check(message)
            msg = decode_data(message)
        except _Refused as refused:
            self._counts["refused", kind] += 1
            if refused.event is not None:
                self._refuse(refused.event)
            return
        except ProtocolError as exc:
            self._counts["refused", kind] += 1
            self._refuse(DataRefused(exc.code, exc.message))
            return
        self._relay(kind, msg)

    def _check(self, message: str | bytes) -> None:
        now = asyncio.get_running_loop().time()
        if not self._grants.data:
            if now - self._refused_at < REFUSAL_INTERVAL:
                raise _Refused(None)
            self._refused_at = now
            raise _Refused(
                DataRefused(
                    ErrorCode.DATA_NOT_ALLOWED,
                    "your room token does not grant `data`: your data messages reach nobody",
                    "data_grant",
                )
            )
        size = len(message)
        most = self._limits.data_message_bytes
        if isinstance(message, str) and size * 4 > most:
            size = len(message.encode("utf-8", "surrogatepass"))  # what came over the wire
        if most and size > most:
            raise _Refused(
                DataRefused(
                    ErrorCode.DATA_TOO_LARGE,
                    f"data message of {size} bytes, over the limit of {most}: it reached nobody",
                    "data_size",
                )
            )
        if self._limiter is None:
            return
        verdict = self._limiter.check(size, now)
        if verdict is Verdict.ACCEPT:
            return
        if verdict is not Verdict.WARN:
            raise _Refused(None)  # the flood goes on: dropped, already said
        limits, over = self._limits, self._limiter.over
        if over == "messages":
            rate = f"{limits.data_rate:g} data messages per second (bursts of {limits.data_burst})"
        else:
            rate = f"{limits.data_byte_rate:g} data bytes per second (bursts of "
            rate += f"{limits.data_byte_burst})"
        raise _Refused(
            DataRefused(
                ErrorCode.DATA_RATE_LIMITED,
                f"more than {rate}: data messages are dropped until the rate falls",
                f"data_{over}",
            )
        )


class _Refused(Exception):
    """A message refused; `event` is what to tell the client (None: nothing more)."""

    def __init__(self, event: DataRefused | None) -> None:
        super().__init__(event.message if event is not None else "refused")
        self.event = event
