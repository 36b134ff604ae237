"""Hooks: sfu.rtc.simulcast_send (RID lines in our SDP; a layer's RTP stream on a sender's
transport), on a real aiortc pair over 127.0.0.1."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import MediaStreamTrack
from aiortc.rtp import RtpPacket

from sfu.rtc import fastpath, probe, rtcp
from sfu.rtc.simulcast import install, packet_rid
from sfu.rtc.simulcast_send import RtpStream, describe_send
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


def test_describe_send_adds_rid_lines_to_the_m_lines_named() -> None:
    sdp = "v=0\r\nm=audio 9 x\r\na=mid:0\r\nm=video 9 x\r\na=mid:1\r\n"
    described = describe_send(sdp, {"1": ("l", "m", "h")})
    assert described == sdp + "a=rid:l send\r\na=rid:m send\r\na=rid:h send\r\n" + (
        "a=simulcast:send l;m;h\r\n"
    )
    assert describe_send(sdp, {}) == sdp


async def test_a_layer_stream_sends_rid_packets_and_hears_its_feedback() -> None:
    install()
    sender_pc, receiver_pc = new_pc(), new_pc()
    started = asyncio.Event()
    transceiver = sender_pc.addTransceiver(
        fastpath.IdleTrack("video", on_start=started.set), direction="sendonly"
    )
    got: list[RtpPacket] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = receiver_pc.getTransceivers()[0].receiver

        def tap(packet: RtpPacket) -> bool:
            got.append(packet)
            return True

        fastpath.tap_rtp(receiver, tap)

    try:
        await negotiate(sender_pc, receiver_pc)
        await asyncio.wait_for(started.wait(), 10)
        codec = fastpath.negotiated_codec(transceiver)
        assert codec is not None and codec.payloadType is not None and transceiver.mid
        keyframes: list[str] = []
        stream = RtpStream(
            transceiver.sender,
            transceiver.mid,
            "m",
            codec.payloadType,
            codec.clockRate,
            on_keyframe=lambda: keyframes.append("m"),
        )
        await stream.send_frame([b"\x10first", b"\x00second"], 9000)
        await eventually(lambda: "" if len(got) == 2 else f"{len(got)} packets", timeout=5)
        first, second = got
        assert {p.ssrc for p in got} == {stream.ssrc}
        assert packet_rid(first) == ("m", False) and first.extensions.mid == transceiver.mid
        assert (second.sequence_number - first.sequence_number) & 0xFFFF == 1
        assert (first.marker, second.marker) == (0, 1) and first.timestamp == 9000
        assert stream.packets == 2

        # Feedback for its SSRC reaches it through aiortc's router.
        receiver_dtls: Any = receiver_pc.getTransceivers()[0].receiver.transport
        pli = rtcp.pli(1234, stream.ssrc)
        nack = rtcp.nack(1234, stream.ssrc, [first.sequence_number])
        await probe.send_rtp(receiver_dtls, pli + nack)

        def heard() -> str:
            # Resent as it was (the receiver's SRTP drops it: it has it, which is fine here).
            return "" if keyframes and stream.retransmitted else f"{keyframes}, resent none"

        await eventually(heard, timeout=5)
        assert keyframes == ["m"] and stream.retransmitted == 1
        await stream.send_report()  # a clock pair once a frame went out (no error)
        stream.close()
        await probe.send_rtp(receiver_dtls, rtcp.pli(1234, stream.ssrc))
        await asyncio.sleep(0.2)
        assert keyframes == ["m"]  # unregistered: nobody hears it any more
    finally:
        await sender_pc.close()
        await receiver_pc.close()
