"""Hooks on RTCRtpSender: the msid stream id, and keyframe requests from the remote receiver.

- aiortc has no public way to set a sender's msid stream id; forwarded tracks carry the
  publisher's peer id there so clients know whose track arrived (`sender._stream_id`).
- A remote PLI/FIR reaches `RTCRtpSender._send_keyframe`, which only sets a flag read by an
  *encoder*. A forwarding sender has none (it packs encoded frames), so we route the request to
  a callback that asks the publisher instead.
- When a sender's RTP loop ends (its connection closed, or failed under it), aiortc stops the
  sender's track. A client that recovers on a new connection publishes the same tracks again,
  so `keep_track(sender)` makes that one stop a no-op: the track is the caller's to stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc.rtcrtpsender import RTCRtpSender

_KEEP = "_aiosfu_keep_track"
_run_rtp = RTCRtpSender._run_rtp


async def _run_rtp_keeping_track(self: RTCRtpSender, codec: Any) -> None:
    track = self.track
    if track is None or not getattr(self, _KEEP, False):
        await _run_rtp(self, codec)
        return
    loop_task = asyncio.current_task()
    stop = track.stop

    def stop_unless_ours() -> None:
        # The loop's own stop(), as it ends, is skipped; anybody else's goes through.
        if asyncio.current_task() is not loop_task:
            stop()

    track.stop = stop_unless_ours  # type: ignore[method-assign]
    try:
        await _run_rtp(self, codec)
    finally:
        if track.__dict__.get("stop") is stop_unless_ours:
            del track.stop


RTCRtpSender._run_rtp = _run_rtp_keeping_track  # type: ignore[method-assign]


def keep_track(sender: RTCRtpSender) -> None:
    """Do not let the end of this sender's RTP loop stop its track."""
    setattr(sender, _KEEP, True)


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    sender._stream_id = stream_id


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever the remote receiver sends a PLI or FIR for this sender."""
    sender._send_keyframe = callback  # type: ignore[method-assign]
