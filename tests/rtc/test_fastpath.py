"""Hooks: sfu.rtc.fastpath, on a real pair of aiortc peer connections over 127.0.0.1 (and
through a real coturn, for a relayed pair)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aioice.turn import TurnTransport
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
)
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from sfu.media import TestPatternTrack
from sfu.rtc import fastpath, probe, rtcp
from sfu.rtc import receiver as rtc_receiver
from sfu.rtc.candidates import selected_pair_types
from signaling.turn import rest_credential
from tests.rtc.pair import negotiate, new_pc
from tests.turnserver import SECRET, Coturn
from tests.util import eventually, recv

# One-packet VP8 frames: descriptor (S=1), then a frame whose tag marks key / delta.
VP8_KEY = bytes([0x10, 0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])
VP8_DELTA = bytes([0x10, 0x11, 0x02, 0x00])


async def test_tap_sees_packets_and_sender_reports() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    sender_pc.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    packets: list[int] = []
    reports: list[tuple[int, int]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = receiver_pc.getTransceivers()[0].receiver

        def consume(packet: RtpPacket) -> bool:
            packets.append(packet.sequence_number)
            return True

        fastpath.tap_rtp(receiver, consume)
        fastpath.tap_sender_reports(receiver, lambda ssrc, ntp, rtp: reports.append((ntp, rtp)))

    try:
        await negotiate(sender_pc, receiver_pc)
        (transceiver,) = receiver_pc.getTransceivers()
        assert fastpath.negotiated_codec(transceiver).mimeType == "video/VP8"  # type: ignore[union-attr]
        await eventually(lambda: "" if len(packets) > 10 else "no RTP tapped", timeout=10)
        await eventually(lambda: "" if reports else "no sender report tapped", timeout=10)
        assert reports[0][0] > 0
        # The tap consumed every packet: aiortc's receiver counted none.
        assert rtc_receiver.rtp_counts(transceiver.receiver) == (0, 0, 0)
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_idle_sender_sends_through_rtp_output_and_hears_nacks() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    started = asyncio.Event()
    idle = fastpath.IdleTrack("video", on_start=started.set)
    transceiver = sender_pc.addTransceiver(idle, direction="sendonly")
    fastpath.prefer_codec(transceiver, "video/VP8")
    nacked: list[int] = []
    fastpath.on_retransmit_request(transceiver.sender, nacked.append)
    got: list[Any] = []
    reports: list[tuple[int, int]] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = receiver_pc.getTransceivers()[0].receiver
        rtc_receiver.capture_encoded_frames(receiver)
        fastpath.tap_sender_reports(receiver, lambda ssrc, ntp, rtp: reports.append((ntp, rtp)))
        got.append(track)

    try:
        await sender_pc.setLocalDescription(await sender_pc.createOffer())
        offered = sender_pc.localDescription.sdp
        assert "VP8/90000" in offered and "H264" not in offered and "rtx/90000" in offered
        await receiver_pc.setRemoteDescription(sender_pc.localDescription)
        await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
        await sender_pc.setRemoteDescription(receiver_pc.localDescription)
        await asyncio.wait_for(started.wait(), 10)  # the sender started: connection is up

        codec = fastpath.negotiated_codec(transceiver)
        assert codec is not None and codec.payloadType is not None
        output = fastpath.RtpOutput(transceiver.sender, codec.payloadType)
        assert output.bind()
        ssrc = fastpath.ssrc(transceiver.sender)
        assert output.ssrc == ssrc
        output.seq_offset, output.ts_offset = 4000, 5  # the source's 1000 goes out as 5000
        for seq, ts, payload in ((1000, 90000, VP8_KEY), (1001, 93000, VP8_DELTA)):
            assert output.forward(seq, ts, 1, payload)
        assert not output.forward(1002, 96000, 1, bytes(1500))  # too large: refused
        assert (output.packets, output.bytes) == (2, len(VP8_KEY) + len(VP8_DELTA))

        frame = await recv(got[0])
        assert bytes(frame) == VP8_KEY[1:] and frame.is_keyframe

        report = rtcp.sender_report(ssrc, 1 << 40, 93000, 2, 10, b"bench")
        assert output.send_rtcp(report)
        receiver = receiver_pc.getTransceivers()[0].receiver
        await probe.send_nack(receiver, ssrc, [5000, 5001])
        await eventually(lambda: "" if nacked == [5000, 5001] else f"nacked {nacked}")
        # Our sender report reached the receiver, which parsed it as one.
        await eventually(lambda: "" if (1 << 40, 93000) in reports else f"reports {reports}")
    finally:
        idle.stop()
        await sender_pc.close()
        await receiver_pc.close()


async def test_output_refuses_before_dtls() -> None:
    pc: RTCPeerConnection = new_pc()
    transceiver = pc.addTransceiver(fastpath.IdleTrack("audio", on_start=lambda: None))
    try:
        output = fastpath.RtpOutput(transceiver.sender, 96)
        assert not output.bind()
        assert not output.forward(1, 1, 0, b"\x00")
    finally:
        await pc.close()


def test_output_follows_the_nominated_pair_on_refresh() -> None:
    # Stand-ins for the DTLS transport -> ICE transport -> aioice connection -> pair chain
    # (a pair whose protocol is not aioice's StunProtocol is sent to through its transport).
    sent: dict[str, list[bytes]] = {"a": [], "b": []}

    def pair(name: str) -> SimpleNamespace:
        wire = SimpleNamespace(sendto=lambda data, addr: sent[name].append(data))
        return SimpleNamespace(protocol=SimpleNamespace(transport=wire), remote_addr=(name, 9))

    policy = Policy(key=bytes(30), ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    nominated: dict[int, SimpleNamespace] = {}
    ice = SimpleNamespace(_connection=SimpleNamespace(_nominated=nominated))
    dtls = SimpleNamespace(state="connected", _tx_srtp=Session(policy=policy), transport=ice)
    output = fastpath.RtpOutput(SimpleNamespace(transport=dtls, _ssrc=7), 96)  # type: ignore[arg-type]

    assert output.bind()  # keyed; no pair yet: packets are refused until a refresh finds one
    assert not output.forward(1, 0, 0, b"x") and not output.refresh()
    nominated[1] = pair("a")
    assert output.refresh() and output.forward(2, 0, 0, b"x")
    nominated[1] = pair("b")  # aioice nominated another pair: followed on the next refresh only
    assert output.forward(3, 0, 0, b"x")
    assert output.refresh() and output.forward(4, 0, 0, b"x")
    assert [len(sent["a"]), len(sent["b"])] == [2, 1]
    output.close()
    assert not output.forward(5, 0, 0, b"x")


async def test_output_sends_channel_data_on_a_relayed_pair(
    coturn: Coturn, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = rest_credential(SECRET, "fastpath", int(time.time()) + 600)
    relayed = RTCConfiguration(
        iceServers=[RTCIceServer(coturn.url, minted.username, minted.credential)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
    sender_pc, receiver_pc = RTCPeerConnection(relayed), new_pc()
    started = asyncio.Event()
    idle = fastpath.IdleTrack("video", on_start=started.set)
    transceiver = sender_pc.addTransceiver(idle, direction="sendonly")
    fastpath.prefer_codec(transceiver, "video/VP8")
    got: list[Any] = []

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        rtc_receiver.capture_encoded_frames(receiver_pc.getTransceivers()[0].receiver)
        got.append(track)

    through_aioice: list[bytes] = []
    sendto = TurnTransport.sendto

    def counted(self: TurnTransport, data: bytes, addr: tuple[str, int]) -> None:
        through_aioice.append(data)
        sendto(self, data, addr)

    monkeypatch.setattr(TurnTransport, "sendto", counted)
    try:
        await negotiate(sender_pc, receiver_pc)
        await asyncio.wait_for(started.wait(), 10)
        codec = fastpath.negotiated_codec(transceiver)
        assert codec is not None and codec.payloadType is not None
        output = fastpath.RtpOutput(transceiver.sender, codec.payloadType)
        assert output.bind()
        assert selected_pair_types(sender_pc) == ("relay", "host")
        before = len(through_aioice)
        for seq, ts, payload in ((1000, 90000, VP8_KEY), (1001, 93000, VP8_DELTA)):
            assert output.forward(seq, ts, 1, payload)
        frame = await recv(got[0])
        assert bytes(frame) == VP8_KEY[1:] and frame.is_keyframe
        # Both packets went out as ChannelData on our socket, none through aioice's task.
        assert len(through_aioice) == before
    finally:
        idle.stop()
        await sender_pc.close()
        await receiver_pc.close()
