"""Hooks: a connection whose data channels share its one bundled transport with its tracks, and
a server that offers the data channels' m-line itself.

With max-bundle, aiortc gives everything it creates the transport of the first thing created:
transceivers made after the data channels (`createDataChannel` before any track, or a remote
offer whose first m-line is the data channels') use the SCTP transport's own DTLS transport.
Two things in aiortc 1.16 go wrong then, both fixed by `bundle_data_channels(pc)`:

- It marks an SCTP transport made before any transceiver as *not bundled*; when an answer then
  names its m-line in the BUNDLE group after another one, it "moves" it to the first m-line's
  transport and stops its old one: the very transport everything runs on (ICE closes, DTLS fails,
  nothing connects; seen: a Python client that opened its data channels, then answered a server
  offer of video in glare). Under max-bundle there is nothing to move: it is marked bundled
  (`RTCSctpTransport._bundled`).
- Each `setRemoteDescription`/`setLocalDescription` starts a `__connect()` task that starts, in
  turn, every transceiver's and then the SCTP transport's ICE and DTLS, and starts a transceiver's
  receiver or sender only if the DTLS transport is `connected` when its turn comes. When the SCTP
  branch of one task is the one that starts the shared DTLS transport, a task that reaches the
  transceivers meanwhile finds it `connecting`, skips them, and nothing starts them later: their
  RTP is dropped unrouted (seen: one Chromium page in three published, data channels open, not
  one packet received). So once that DTLS transport is `connected`, `__connect()` runs once more;
  what it finds started already it leaves be.

`offer_data_channels(pc)` makes every offer of `pc` carry the data channels' m-line (after the
tracks', as JSEP orders it) without opening a channel: aiortc offers one only once a channel
exists (or with `alwaysNegotiateDataChannels`, which puts it first, ahead of the tracks). The
server does this for a client that opens channels, so that they are negotiated in the first
exchange whoever offers first: Chromium (156) never offers its data channels again on a
connection where it rolled back the offer that first carried them (glare), and they stay
`connecting` for good, even when the remote offers the m-line later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCDtlsTransport, RTCPeerConnection

_WATCHED = "_aiosfu_connect_when_up"
_RUNNING: set[asyncio.Task[None]] = set()  # held until done: the loop keeps only weak references


def bundle_data_channels(pc: RTCPeerConnection) -> None:
    """Call after anything that may create the SCTP transport (createDataChannel, a remote
    description with an m=application line); idempotent."""
    sctp = pc.sctp
    if sctp is None:
        return
    sctp._bundled = True
    dtls: RTCDtlsTransport = sctp.transport
    if getattr(dtls, _WATCHED, False):
        return
    setattr(dtls, _WATCHED, True)
    connect: Any = pc._RTCPeerConnection__connect  # type: ignore[attr-defined]

    def on_state() -> None:
        if dtls.state == "connected":
            dtls.remove_listener("statechange", on_state)  # once: and no cycle through pc
            task = asyncio.ensure_future(connect())
            _RUNNING.add(task)
            task.add_done_callback(_RUNNING.discard)

    dtls.on("statechange", on_state)


def offer_data_channels(pc: RTCPeerConnection) -> None:
    """Call before `createOffer` (after adding the offer's transceivers: the SCTP transport is
    bundled on the first one's); idempotent, and a no-op once the SCTP transport exists."""
    if pc.sctp is None:
        pc._RTCPeerConnection__createSctpTransport()  # type: ignore[attr-defined]
    bundle_data_channels(pc)
