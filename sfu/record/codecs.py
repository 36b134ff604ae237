"""What a recording needs to know about the codecs it stores, read from the frames themselves.

The container's header declares each track (codec, picture size, Opus setup) before any frame is
written, and the bot has no decoder to ask: the picture size comes from the first keyframe's
own header (VP8 frame header, H.264 sequence parameter set), the Opus setup is the one WebRTC
always negotiates (`opus/48000/2`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class CodecInfo:
    ffmpeg_name: str  # the codec's name in FFmpeg (PyAV's add_mux_stream)
    webm: bool  # whether WebM may carry it (else the file is Matroska)


# By RTP MIME type, lower case. WebM holds VP8, VP9 and Opus; H.264 and the G.7xx voice codecs
# need Matroska.
CODECS: Final[dict[str, CodecInfo]] = {
    "video/vp8": CodecInfo("vp8", webm=True),
    "video/vp9": CodecInfo("vp9", webm=True),
    "video/h264": CodecInfo("h264", webm=False),
    "audio/opus": CodecInfo("opus", webm=True),
    "audio/pcmu": CodecInfo("pcm_mulaw", webm=False),
    "audio/pcma": CodecInfo("pcm_alaw", webm=False),
    "audio/g722": CodecInfo("adpcm_g722", webm=False),
}


def codec_info(mime_type: str) -> CodecInfo | None:
    return CODECS.get(mime_type.lower())


def container_for(mime_types: list[str]) -> tuple[str, str]:
    """(FFmpeg format, file extension): WebM when it can hold every track, else Matroska."""
    if all((info := codec_info(m)) is not None and info.webm for m in mime_types):
        return "webm", ".webm"
    return "matroska", ".mkv"


def opus_head(channels: int = 2, sample_rate: int = 48_000) -> bytes:
    """An Opus identification header (RFC 7845 5.1): Matroska's CodecPrivate for Opus.

    No pre-skip: WebRTC's Opus frames start with real audio.
    """
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 0, sample_rate, 0, 0)


def picture_size(mime_type: str, frame: bytes) -> tuple[int, int] | None:
    """The picture size a keyframe declares; None when the frame does not say."""
    name = mime_type.lower()
    if name == "video/vp8":
        return vp8_size(frame)
    if name == "video/h264":
        return h264_size(frame)
    if name == "video/vp9":
        return None  # VP9's header is bit-packed; the decoder reads it from the stream
    return None


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 keyframe header (RFC 6386 9.1)."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width, height = struct.unpack_from("<HH", frame, 6)
    return width & 0x3FFF, height & 0x3FFF


def h264_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height from the first sequence parameter set in an Annex B access unit."""
    for nal in _nal_units(frame):
        if nal and nal[0] & 0x1F == 7:
            try:
                return _sps_size(nal[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
            except IndexError:
                return None  # truncated
    return None


def _nal_units(data: bytes) -> list[bytes]:
    starts: list[int] = []
    pos = data.find(b"\x00\x00\x01")
    while pos != -1:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    ends = [s - 3 for s in starts[1:]] + [len(data)]
    return [data[s:e].rstrip(b"\x00") for s, e in zip(starts, ends, strict=True)]


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            value = value << 1 | (byte >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ue(self) -> int:  # Exp-Golomb, unsigned
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.read(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


# Profiles whose SPS carries chroma format and bit depths (ITU-T H.264 7.3.2.1.1).
_HIGH_PROFILES: Final = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _sps_size(rbsp: bytes) -> tuple[int, int]:
    r = _Bits(rbsp)
    profile = r.read(8)
    r.read(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma_format = 1
    if profile in _HIGH_PROFILES:
        chroma_format = r.ue()
        if chroma_format == 3:
            r.read(1)  # separate_colour_plane_flag
        r.ue()  # bit_depth_luma_minus8
        r.ue()  # bit_depth_chroma_minus8
        r.read(1)  # qpprime_y_zero_transform_bypass_flag
        if r.read(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format != 3 else 12):
                if r.read(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        r.read(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max_num_ref_frames
    r.read(1)  # gaps_in_frame_num_value_allowed_flag
    width = (r.ue() + 1) * 16
    map_height = r.ue() + 1
    frame_mbs_only = r.read(1)
    if not frame_mbs_only:
        r.read(1)  # mb_adaptive_frame_field_flag
    r.read(1)  # direct_8x8_inference_flag
    height = (2 - frame_mbs_only) * map_height * 16
    if r.read(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if chroma_format == 0:
            crop_x, crop_y = 1, 2 - frame_mbs_only
        else:
            crop_x = 1 if chroma_format == 3 else 2
            crop_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def _skip_scaling_list(r: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + r.se() + 256) % 256
        last = following or last
