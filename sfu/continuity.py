"""Where a subscription's stream goes on when it switches simulcast layers: the new offsets.

A subscriber sees one stream whatever layer it gets: its own SSRC, and sequence numbers,
timestamps and (VP8) PictureID / TL0PICIDX that go on from the last packet it got of the old
layer. Each is the source's value plus an offset (sfu.rtc.fastpath.RtpOutput adds them); a
switch, on a keyframe of the new layer, computes new offsets (decide, then act: nothing here
sends or holds state):

- sequence number: the old layer's newest packet, as forwarded, plus one;
- timestamp: the keyframe's capture time on the old layer's clock, from both layers' sender
  reports (NTP and RTP time of the same instant), as mediasoup and LiveKit do; without them
  (or when they disagree with the wall clock by half a second), the old layer's newest
  timestamp plus the time elapsed since it arrived. Never behind the last timestamp sent:
  a decoder takes a frame older than the last one for a late duplicate;
- VP8 PictureID and TL0PICIDX: the old layer's newest, as forwarded, plus one (a keyframe is a
  base-layer frame: it starts a new TL0PICIDX). Widths (7 or 15-bit PictureID) are kept as the
  source sends them; Chromium always sends 15 bits.
"""

from __future__ import annotations

from typing import NamedTuple

from .payload import vp8_picture_ids


class Offsets(NamedTuple):
    """What is added to the source's fields (modulo their widths) to make the subscriber's."""

    seq: int
    ts: int
    picture_id: int = 0
    tl0: int = 0


class Packet(NamedTuple):
    seq: int
    timestamp: int
    payload: bytes


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def capture_on(
    timestamp: int, new_report: tuple[int, int], old_report: tuple[int, int], clock_rate: int
) -> int:
    """A timestamp of one stream on another stream's clock, from a sender report of each
    (NTP timestamp, 32.32 fixed point; RTP timestamp at that instant)."""
    (new_ntp, new_rtp), (old_ntp, old_rtp) = new_report, old_report
    elapsed = ((new_ntp - old_ntp) * clock_rate) >> 32  # NTP difference in clock units
    return (timestamp - new_rtp + old_rtp + elapsed) & 0xFFFFFFFF


def after_switch(
    old: Offsets,
    last: Packet,
    key: Packet,
    *,
    since_last: float,
    clock_rate: int,
    old_report: tuple[int, int] | None = None,
    new_report: tuple[int, int] | None = None,
    vp8: bool = False,
) -> Offsets:
    """Offsets for the new layer, whose keyframe `key` follows `last`, the newest packet of the
    old layer (forwarded with `old`), which arrived `since_last` seconds before the keyframe."""
    out_seq = (last.seq + old.seq) & 0xFFFF
    seq = (out_seq + 1 - key.seq) & 0xFFFF
    out_ts = (last.timestamp + old.ts) & 0xFFFFFFFF
    guess = (out_ts + int(max(0.0, since_last) * clock_rate)) & 0xFFFFFFFF
    if old_report is not None and new_report is not None:
        mapped = (capture_on(key.timestamp, new_report, old_report, clock_rate) + old.ts) & (
            0xFFFFFFFF
        )
        if abs(_signed32(mapped - guess)) < clock_rate // 2:
            guess = mapped
    if _signed32(guess - out_ts) <= 0:
        guess = (out_ts + 1) & 0xFFFFFFFF
    ts = (guess - key.timestamp) & 0xFFFFFFFF
    picture_id, tl0 = old.picture_id, old.tl0
    if vp8:
        was, now = vp8_picture_ids(last.payload), vp8_picture_ids(key.payload)
        if was is not None and now is not None:
            mask = 0x7FFF if now[1] == 15 else 0x7F
            picture_id = (was[0] + old.picture_id + 1 - now[0]) & mask
            if was[2] >= 0 and now[2] >= 0:
                tl0 = (was[2] + old.tl0 + 1 - now[2]) & 0xFF
    return Offsets(seq, ts, picture_id, tl0)
