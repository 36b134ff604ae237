"""Lean RTCP for forwarding senders: what aiortc does per sender, for many subscribers at less cost.

aiortc gives every RTCRtpSender its own task that builds an SR and an SDES packet every
0.5-1.5 s through its RTCP classes, and parses every compound RTCP packet a peer sends into
objects, receiver reports included (and turns each into a stats entry). For a forwarding server
with many subscribers that fixed cost rivals the forwarding itself. Here:

- `stop_sender_reports(sender)` retires the sender's own RTCP task; `sender_report()` builds the
  SR + SDES compound packet for the caller to send (sfu.subscription schedules them);
- `skip_receiver_reports(dtls)` lets compound packets made only of RRs and SDES bypass aiortc's
  parser (nothing acts on them here); anything else (SR, NACK, PLI, FIR, REMB, BYE) goes through;
- `receiver_report()` (or `report_block()`s in `receiver_report_of()`), `nack()`, `remb()` and
  `pli()` build the feedback a publisher gets from
  sfu.inbound's lean receive path (aiortc's receiver would build the same from its own state).
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from aiortc import RTCRtpSender

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_RTPFB, RTCP_PSFB = 200, 201, 202, 205, 206
FMT_NACK, FMT_PLI, FMT_REMB = 1, 1, 15
_SR = struct.Struct("!BBHLQLLL")  # header, SSRC, NTP, RTP timestamp, packets, octets
_SDES_HEADER = struct.Struct("!BBHL")  # header, SSRC of the one chunk
_FEEDBACK = struct.Struct("!BBHLL")  # header, sender SSRC, media SSRC (RFC 4585 6.1)
_REPORT_BLOCK = struct.Struct("!LLLLLL")  # RFC 3550 6.4.1
_NACK_FCI = struct.Struct("!HH")  # PID, BLP


def sender_report(
    ssrc: int, ntp_timestamp: int, rtp_timestamp: int, packets: int, octets: int, cname: bytes
) -> bytes:
    """A compound RTCP packet: an SR with no report blocks, then an SDES with the CNAME."""
    sr = _SR.pack(
        0x80,
        RTCP_SR,
        6,
        ssrc,
        ntp_timestamp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp & 0xFFFFFFFF,
        packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )
    item = bytes((1, len(cname))) + cname + b"\x00"  # CNAME, then the end of the item list
    item += b"\x00" * (-len(item) % 4)
    sdes = _SDES_HEADER.pack(0x81, RTCP_SDES, (4 + len(item)) // 4, ssrc) + item
    return sr + sdes


def report_block(
    media_ssrc: int,
    fraction_lost: int,
    packets_lost: int,
    highest_sequence: int,
    jitter: int,
    lsr: int,
    dlsr: int,
) -> bytes:
    """One report block (RFC 3550 6.4.1); the cumulative loss is a signed 24 bits."""
    lost = max(-0x800000, min(0x7FFFFF, packets_lost)) & 0xFFFFFF
    return _REPORT_BLOCK.pack(
        media_ssrc,
        (fraction_lost & 0xFF) << 24 | lost,
        highest_sequence & 0xFFFFFFFF,
        jitter & 0xFFFFFFFF,
        lsr & 0xFFFFFFFF,
        dlsr & 0xFFFFFFFF,
    )


def receiver_report_of(ssrc: int, blocks: list[bytes]) -> bytes:
    """An RR carrying these report blocks (at most 31: a simulcast publication has 3)."""
    assert len(blocks) < 32, "an RR holds at most 31 report blocks"
    header = struct.pack("!BBHL", 0x80 | len(blocks), RTCP_RR, 1 + 6 * len(blocks), ssrc)
    return header + b"".join(blocks)


def receiver_report(
    ssrc: int,
    media_ssrc: int,
    fraction_lost: int,
    packets_lost: int,
    highest_sequence: int,
    jitter: int,
    lsr: int,
    dlsr: int,
) -> bytes:
    """An RR with one report block (RFC 3550 6.4.2)."""
    block = report_block(
        media_ssrc, fraction_lost, packets_lost, highest_sequence, jitter, lsr, dlsr
    )
    return receiver_report_of(ssrc, [block])


def nack(ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """A generic NACK (RFC 4585 6.2.1) for these sequence numbers, packed 17 per entry."""
    fci = bytearray()
    pos, seqs = 0, sorted(lost)
    while pos < len(seqs):
        pid, blp = seqs[pos], 0
        pos += 1
        while pos < len(seqs) and 0 < seqs[pos] - pid <= 16:
            blp |= 1 << (seqs[pos] - pid - 1)
            pos += 1
        fci += _NACK_FCI.pack(pid & 0xFFFF, blp)
    return _FEEDBACK.pack(0x80 | FMT_NACK, RTCP_RTPFB, 2 + len(fci) // 4, ssrc, media_ssrc) + fci


def remb(ssrc: int, bitrate: int, media_ssrcs: list[int]) -> bytes:
    """A REMB (draft-alvestrand-rmcat-remb): an upper bound on what the sender should send."""
    exponent, mantissa = 0, max(0, bitrate)
    while mantissa >= 1 << 18:
        mantissa >>= 1
        exponent += 1
    fci = b"REMB" + struct.pack("!L", len(media_ssrcs) << 24 | exponent << 18 | mantissa)
    fci += b"".join(struct.pack("!L", s) for s in media_ssrcs)
    return _FEEDBACK.pack(0x80 | FMT_REMB, RTCP_PSFB, 2 + len(fci) // 4, ssrc, 0) + fci


def pli(ssrc: int, media_ssrc: int) -> bytes:
    """A picture loss indication (RFC 4585 6.3.1): the sender should send a keyframe."""
    return _FEEDBACK.pack(0x80 | FMT_PLI, RTCP_PSFB, 2, ssrc, media_ssrc)


def cname(sender: RTCRtpSender) -> bytes:
    """The CNAME aiortc negotiated for the sender (known once it started)."""
    value: str | None = sender._RTCRtpSender__cname  # type: ignore[attr-defined]
    return (value or "").encode()


def stop_sender_reports(sender: RTCRtpSender) -> None:
    """Make the sender's RTCP task end at once (its SRs are sent by the caller instead).

    aiortc's stop() waits for that task's started/exited events: they are set here.
    """

    async def run_rtcp() -> None:
        sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]


def only_reports(data: bytes) -> bool:
    """True when a (decrypted) compound RTCP packet holds nothing but RRs and SDES."""
    pos, end = 0, len(data)
    while pos + 4 <= end:
        if data[pos + 1] not in (RTCP_RR, RTCP_SDES):
            return False
        pos += (((data[pos + 2] << 8) | data[pos + 3]) + 1) * 4
    return pos == end


class ReceiverFeedback(Protocol):
    """What a subscriber's RTCP tells about the streams we send it (sfu.bwe)."""

    def loss(self, ssrc: int, fraction: int) -> None:
        """A report block: the fraction (in 256ths) of `ssrc`'s packets lost lately."""

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        """A REMB: the receiver's estimate (bits/s) for the streams it names."""


def read_feedback(data: bytes, sink: ReceiverFeedback) -> bool:
    """Give `sink` the report blocks (of RRs and SRs) and REMBs of a decrypted compound RTCP
    packet; True when it also holds something aiortc must see (an SR, other feedback, a BYE)."""
    pos, end = 0, len(data)
    rest = False
    while pos + 4 <= end:
        first, pt = data[pos], data[pos + 1]
        size = (((data[pos + 2] << 8) | data[pos + 3]) + 1) * 4
        if pos + size > end:
            return True  # malformed: aiortc's parser says what it makes of it
        if pt in (RTCP_RR, RTCP_SR):
            blocks = pos + (8 if pt == RTCP_RR else 28)
            for i in range(first & 0x1F):
                block = blocks + 24 * i
                if block + 24 > pos + size:
                    break
                sink.loss(int.from_bytes(data[block : block + 4], "big"), data[block + 4])
            rest = rest or pt == RTCP_SR
        elif pt == RTCP_PSFB and first & 0x1F == FMT_REMB and data[pos + 12 : pos + 16] == b"REMB":
            if size >= 20:
                word = int.from_bytes(data[pos + 16 : pos + 20], "big")
                count = word >> 24
                bitrate = (word & 0x3FFFF) << ((word >> 18) & 0x3F)
                ssrcs = [
                    int.from_bytes(data[at : at + 4], "big")
                    for at in range(pos + 20, min(pos + 20 + 4 * count, pos + size), 4)
                ]
                sink.remb(bitrate, ssrcs)
        elif pt != RTCP_SDES:
            rest = True
        pos += size
    return rest or pos != end


def skip_receiver_reports(dtls: Any) -> None:
    """Keep RR/SDES-only compound packets away from aiortc's RTCP parser (idempotent)."""
    if getattr(dtls, "_aiosfu_lean_rtcp", False):
        return
    handle = dtls._handle_rtcp_data

    async def handle_rtcp_data(data: bytes) -> None:
        if not only_reports(data):
            await handle(data)

    dtls._handle_rtcp_data = handle_rtcp_data
    dtls._aiosfu_lean_rtcp = True
