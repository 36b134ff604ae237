"""A sender "encoder" that only packetizes: forwarding never creates a codec.

aiortc's RTCRtpSender creates its encoder with `get_encoder(codec)` on the first frame, even when
it is handed encoded `av.Packet`s that only need `pack()`; for Opus that constructs a libopus
encoder (and a resampler) on the server. We preset the sender's private encoder slot with a
Packetizer that splits encoded frames into RTP payloads using aiortc's own payload formats and
refuses to encode. The codec is read from the transceiver on the first packet, once negotiated.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import convert_timebase
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

Pack = Callable[[Any], tuple[list[bytes], int]]


def packer_for(codec: RTCRtpCodecParameters) -> Pack:
    """The RTP payloads and timestamp of one encoded frame, for this codec."""
    mime = codec.mimeType.lower()
    clock = fractions.Fraction(1, codec.clockRate)

    def timestamp(packet: Any) -> int:
        return int(convert_timebase(packet.pts, packet.time_base, clock))

    if mime == "video/vp8":
        picture_id = 0

        def pack_vp8(packet: Any) -> tuple[list[bytes], int]:
            nonlocal picture_id
            payloads = Vp8Encoder._packetize(bytes(packet), picture_id)
            picture_id = (picture_id + 1) % (1 << 15)
            return payloads, timestamp(packet)

        return pack_vp8
    if mime == "video/h264":

        def pack_h264(packet: Any) -> tuple[list[bytes], int]:
            units = H264Encoder._split_bitstream(bytes(packet))
            return H264Encoder._packetize(units), timestamp(packet)

        return pack_h264
    if mime.startswith("audio/"):

        def pack_audio(packet: Any) -> tuple[list[bytes], int]:
            return [bytes(packet)], timestamp(packet)

        return pack_audio
    raise ValueError(f"cannot forward {codec.mimeType}: no payload format")


class Packetizer:
    def __init__(self, transceiver: RTCRtpTransceiver) -> None:
        self._transceiver = transceiver
        self._pack: Pack | None = None

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        if self._pack is None:
            codecs: list[RTCRtpCodecParameters] = self._transceiver._codecs
            self._pack = packer_for(codecs[0])
        return self._pack(packet)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a forwarding sender was given a raw frame: it never encodes")


def use_packetizer(transceiver: RTCRtpTransceiver) -> Packetizer:
    """Make the transceiver's sender packetize encoded frames without creating an encoder."""
    packetizer = Packetizer(transceiver)
    transceiver.sender._RTCRtpSender__encoder = packetizer  # type: ignore[attr-defined]
    return packetizer
