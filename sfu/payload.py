"""What the forwarder must know of payload formats: where a decoder can start.

Packet-level (RTP payload) checks: they run once per packet a publisher sends (not per
subscriber), so that a publication knows where its latest keyframe starts. Frame-level checks
for encoded frames live in sfu.rtc.receiver.
"""

from __future__ import annotations

from collections.abc import Callable

KeyframeCheck = Callable[[bytes], bool]


def vp8_keyframe_start(payload: bytes) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 4.2 and 4.3)."""
    n = len(payload)
    if n < 2:
        return False
    first = payload[0]
    # S (start of partition) set and partition index 0: the VP8 payload header follows.
    if not first & 0x10 or first & 0x0F:
        return False
    pos = 1
    if first & 0x80:  # X: extension byte present
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if pos >= n:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    # VP8 payload header: bit 0 (P, inverse key frame flag) is 0 on a key frame.
    return pos < n and not payload[pos] & 0x01


def vp8_picture_ids(payload: bytes) -> tuple[int, int, int] | None:
    """(PictureID, its width in bits (7 or 15), TL0PICIDX or -1) of a VP8 payload descriptor
    (RFC 7741 4.2), or None when it carries no PictureID. Read at layer switches only."""
    n = len(payload)
    if n < 3 or not payload[0] & 0x80 or not payload[1] & 0x80:
        return None
    if payload[2] & 0x80:
        if n < 4:
            return None
        picture_id, bits, pos = ((payload[2] & 0x7F) << 8) | payload[3], 15, 4
    else:
        picture_id, bits, pos = payload[2], 7, 3
    tl0 = payload[pos] if payload[1] & 0x40 and pos < n else -1
    return picture_id, bits, tl0


def h264_keyframe_start(payload: bytes) -> bool:
    """True for a packet carrying an SPS or the start of an IDR slice (RFC 6184)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A: 16-bit size, then the NAL unit, repeated
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            if payload[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A: start bit and the fragmented NAL type
        return bool(payload[1] & 0x80) and payload[1] & 0x1F in (5, 7)
    return False


def _always(payload: bytes) -> bool:
    return True


def _never(payload: bytes) -> bool:
    return False


def keyframe_check(mime_type: str) -> KeyframeCheck:
    """The packet-level check for a codec; audio can start anywhere."""
    mime = mime_type.lower()
    if mime.startswith("audio/"):
        return _always
    if mime == "video/vp8":
        return vp8_keyframe_start
    if mime == "video/h264":
        return h264_keyframe_start
    return _never
