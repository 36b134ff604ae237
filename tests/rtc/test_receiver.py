"""Hooks: sfu.rtc.receiver (encoded frames before any decoder, PLI) and sfu.rtc.sender."""

from __future__ import annotations

import fractions
from typing import Any

import aiortc.rtcrtpreceiver
import pytest
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from sfu.media import TestPatternTrack
from sfu.rtc import fastpath, rtcp
from sfu.rtc import receiver as rtc_receiver
from sfu.rtc import sender as rtc_sender
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually, recv

VP8_KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # frame tag bit 0 clear: key frame
VP8_DELTA = bytes([0x31, 0x02, 0x00])


@pytest.mark.parametrize(
    ("mime", "data", "key"),
    [
        ("video/VP8", VP8_KEY, True),
        ("video/VP8", VP8_DELTA, False),
        ("video/VP8", b"", False),
        ("video/H264", b"\x00\x00\x00\x01\x67\x42\x00\x00\x00\x01\x65\x88", True),  # SPS, IDR
        ("video/H264", b"\x00\x00\x00\x01\x41\x9a", False),  # non-IDR slice
        ("audio/opus", b"\xfc", True),
    ],
)
def test_keyframe_detection(mime: str, data: bytes, key: bool) -> None:
    assert rtc_receiver.is_keyframe(mime, data) is key


async def test_encoded_frames_arrive_without_a_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoder(codec: Any) -> None:
        raise AssertionError(f"a {codec.mimeType} decoder was created")

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", no_decoder)
    sender_pc, receiver_pc = new_pc(), new_pc()
    sent = TestPatternTrack(320, 240, fps=30)
    sender_pc.addTransceiver(sent, direction="sendonly")
    got: list[tuple[MediaStreamTrack, rtc_receiver.EncodedFrameSink]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(
            t.receiver for t in receiver_pc.getTransceivers() if t.receiver.track is track
        )
        got.append((track, rtc_receiver.capture_encoded_frames(receiver)))

    try:
        await negotiate(sender_pc, receiver_pc)
        track, sink = got[0]
        first = await recv(track, 10)
        second = await recv(track, 10)
        assert first.is_keyframe and not second.is_keyframe  # aiortc's VP8 encoder starts on a key
        assert first.time_base == second.time_base == fractions.Fraction(1, 90000)
        assert 0 == first.pts < second.pts
        assert sink.frames >= 2 and sink.keyframes >= 1
    finally:
        await sender_pc.close()
        await receiver_pc.close()
    # The receiver ended its track the usual way when it stopped (after the frames still queued).
    with pytest.raises(MediaStreamError):
        for _ in range(1000):
            await recv(track, 5)


async def test_pli_reaches_the_senders_keyframe_hook() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    transceiver = sender_pc.addTransceiver(TestPatternTrack(320, 240), direction="sendonly")
    rtc_sender.set_stream_id(transceiver.sender, "publisher-7")
    requests: list[int] = []
    rtc_sender.on_keyframe_request(transceiver.sender, lambda: requests.append(1))
    receivers = []
    receiver_pc.on("track", lambda t: receivers.append(receiver_pc.getTransceivers()[0].receiver))
    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        assert "a=msid:publisher-7 " in sender_pc.localDescription.sdp
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        receiver = receivers[0]
        await recv(receiver.track, 10)
        received, expected, rtx = rtc_receiver.rtp_counts(receiver)
        assert 0 < received <= expected and rtx == 0
        # A PLI as sfu.publication sends it (sfu.rtc.rtcp bytes, on the transport, in place).
        assert fastpath.send_rtcp(
            receiver.transport, rtcp.pli(1, fastpath.ssrc(transceiver.sender))
        )
        await eventually(lambda: "" if requests else "no keyframe request reached the sender")
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_capture_after_start_is_refused() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    sender_pc.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    try:
        await negotiate(sender_pc, receiver_pc)
        receiver = receiver_pc.getTransceivers()[0].receiver
        await eventually(lambda: "" if rtc_receiver.decoding_started(receiver) else "not started")
        with pytest.raises(RuntimeError, match="already started"):
            rtc_receiver.capture_encoded_frames(receiver)
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_rtp_timestamps_map_to_frame_pts() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    sender_pc.addTransceiver(TestPatternTrack(160, 120, fps=30), direction="sendonly")
    first: list[int] = []
    try:
        await negotiate(sender_pc, receiver_pc)
        receiver = receiver_pc.getTransceivers()[0].receiver
        assert rtc_receiver.rtp_to_pts(receiver, 1234) is None  # no frame yet: no origin

        def note_first(packet: Any) -> bool:
            if not first:
                first.append(packet.timestamp)
            return False

        fastpath.tap_rtp(receiver, note_first)
        frame = await recv(receiver.track, 10)
        second = await recv(receiver.track, 10)
        origin = first[0]
        assert frame.pts == 0 and rtc_receiver.rtp_to_pts(receiver, origin) == 0
        assert rtc_receiver.rtp_to_pts(receiver, (origin + second.pts) & 0xFFFFFFFF) == second.pts
        # A timestamp just before the origin, across a 32-bit wrap either way, stays close.
        assert rtc_receiver.rtp_to_pts(receiver, (origin - 3000) & 0xFFFFFFFF) == -3000
        assert rtc_receiver.rtp_to_pts(receiver, (origin + 90_000) & 0xFFFFFFFF) == 90_000
    finally:
        await sender_pc.close()
        await receiver_pc.close()
