"""Hooks on RTCRtpSender: the msid stream id, and keyframe requests from the remote receiver.

- aiortc has no public way to set a sender's msid stream id; forwarded tracks carry the
  publisher's peer id there so clients know whose track arrived (`sender._stream_id`).
- A remote PLI/FIR reaches `RTCRtpSender._send_keyframe`, which only sets a flag read by an
  *encoder*. A forwarding sender has none (it packs encoded frames), so we route the request to
  a callback that asks the publisher instead.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc.rtcrtpsender import RTCRtpSender


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    sender._stream_id = stream_id


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` whenever the remote receiver sends a PLI or FIR for this sender."""
    sender._send_keyframe = callback  # type: ignore[method-assign]
