"""Simulcast send: what a Python publisher needs that aiortc's RTCRtpSender cannot do.

aiortc sends one RTP stream per sender: one SSRC, one encoder, no RID. A simulcast publisher
sends one m-line with several streams (`a=rid:<rid> send`, `a=simulcast:send l;m;h`), each of
its own SSRC and numbering, each packet naming its layer in the `rtp-stream-id` header
extension (and its m-line in `mid`). Here:

- `describe_send(sdp, rids_by_mid)`: the RID lines of our offers (and answers), added to the
  text aiortc wrote (its SDP model has no field for them; sfu.rtc.simulcast says more);
- `RtpStream`: one layer's stream on a sender's transport. It numbers the packets, writes the
  MID and RID extensions through the transport's own extension map (negotiated by aiortc, with
  the RID URIs sfu.rtc.simulcast.install() adds), SRTP-protects and sends them with the
  transport's `_send_rtp`, keeps the last packets for NACKs, sends its own sender reports, and
  gets the RTCP that names its SSRC: aiortc's router hands feedback only to the senders it has
  registered, so the stream registers itself there as one (PLI/FIR -> `on_keyframe`, NACK ->
  resend). The sender's own stream (an idle one: its track never yields a frame) stays silent.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.clock import current_ntp_time
from aiortc.rtp import (
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    RtpPacket,
)

from . import rtcp

HISTORY = 512  # packets kept per stream for NACKs: ~1 s of a 4 Mbps layer

_MID_LINE = re.compile(r"^a=mid:(\S+)", re.MULTILINE)


def describe_send(sdp: str, rids_by_mid: dict[str, tuple[str, ...]]) -> str:
    """Our description with `a=rid:<rid> send` and `a=simulcast:send` on these m-lines."""
    if not rids_by_mid:
        return sdp
    sections = re.split(r"(?m)^(?=m=)", sdp)
    for i, section in enumerate(sections[1:], start=1):
        mid = _MID_LINE.search(section)
        rids = rids_by_mid.get(mid.group(1)) if mid is not None else None
        if not rids:
            continue
        eol = "\r\n" if section.endswith("\r\n") else "\n"
        lines = [f"a=rid:{rid} send" for rid in rids] + ["a=simulcast:send " + ";".join(rids)]
        sections[i] = section + eol.join(lines) + eol
    return "".join(sections)


class RtpStream:
    """One simulcast layer's RTP stream, sent on an RTCRtpSender's transport (see the module
    doc). Made once the sender has started (its transport is up and its m-line negotiated)."""

    def __init__(
        self,
        sender: RTCRtpSender,
        mid: str,
        rid: str,
        payload_type: int,
        clock_rate: int,
        on_keyframe: Callable[[], None],
    ) -> None:
        self.transport: Any = sender.transport
        self.mid = mid
        self.rid = rid
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.on_keyframe = on_keyframe
        self.ssrc = random.getrandbits(32)
        self.sequence_number = random.getrandbits(16)
        self.packets = 0
        self.octets = 0
        self.keyframe_requests = 0
        self.retransmitted = 0
        self._cname = rtcp.cname(sender)
        self._history: dict[int, bytes] = {}
        self._last: tuple[int, float] | None = None  # (timestamp, time.time()) of the last frame
        self._ssrc = self.ssrc  # aiortc's RtpSender protocol: what its router reads
        self._router = self.transport._rtp_router
        self._router.register_sender(self, self.ssrc)

    async def send_frame(self, payloads: list[bytes], timestamp: int) -> None:
        """One encoded frame, already packetized: the marker on its last packet."""
        extensions = self.transport._rtp_header_extensions_map
        for i, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=self.payload_type,
                sequence_number=self.sequence_number,
                timestamp=timestamp,
                ssrc=self.ssrc,
                marker=int(i == len(payloads) - 1),
                payload=payload,
            )
            packet.extensions.mid = self.mid
            packet.extensions.rtp_stream_id = self.rid
            data = packet.serialize(extensions)
            self._history[self.sequence_number % HISTORY] = data
            self.sequence_number = (self.sequence_number + 1) & 0xFFFF
            self.packets += 1
            self.octets += len(payload)
            await self.transport._send_rtp(data)
        self._last = (timestamp, time.time())

    async def send_report(self) -> None:
        """A sender report: this stream's clock pair (NTP now, the RTP time of now)."""
        if self._last is None:
            return
        timestamp, at = self._last
        rtp = timestamp + int((time.time() - at) * self.clock_rate)
        report = rtcp.sender_report(
            self.ssrc, current_ntp_time(), rtp, self.packets, self.octets, self._cname
        )
        await self.transport._send_rtp(report)

    # Called by aiortc's router for RTCP that names our SSRC (the RtpSender protocol).
    async def _handle_rtcp_packet(self, packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt in (RTCP_PSFB_PLI, RTCP_PSFB_FIR):
            self.keyframe_requests += 1
            self.on_keyframe()
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                data = self._history.get(seq % HISTORY)
                if data is not None and int.from_bytes(data[2:4], "big") == seq:
                    self.retransmitted += 1
                    await self.transport._send_rtp(data)

    def close(self) -> None:
        self._router.unregister_sender(self)
        self._history.clear()
