"""Hooks: sfu.rtc.rtcp (lean sender reports, receiver reports kept from aiortc's parser)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtp import (
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from sfu.rtc import fastpath, probe, rtcp
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


def test_sender_report_bytes_parse_back() -> None:
    data = rtcp.sender_report(0x11223344, (5 << 32) | 7, 90000 + (1 << 32), 12, 3400, b"cname!")
    sr, sdes = RtcpPacket.parse(data)
    assert isinstance(sr, RtcpSrPacket) and isinstance(sdes, RtcpSdesPacket)
    assert sr.ssrc == 0x11223344 and sr.reports == []
    info = sr.sender_info
    assert (info.ntp_timestamp, info.rtp_timestamp) == ((5 << 32) | 7, 90000)  # wrapped
    assert (info.packet_count, info.octet_count) == (12, 3400)
    assert sdes.chunks[0].ssrc == 0x11223344 and sdes.chunks[0].items == [(1, b"cname!")]
    assert len(data) % 4 == 0


def test_receiver_report_parses_back() -> None:
    data = rtcp.receiver_report(1, 0xAABBCCDD, 25, -3, (2 << 16) | 17, 120, 0x1234, 0x5678)
    assert (
        data.hex()
        == "81c9000700000001aabbccdd19fffffd0002001100000078000012340000 5678".replace(" ", "")
    )
    (rr,) = RtcpPacket.parse(data)
    assert isinstance(rr, RtcpRrPacket) and rr.ssrc == 1
    (block,) = rr.reports
    assert (block.ssrc, block.fraction_lost, block.packets_lost) == (0xAABBCCDD, 25, -3)
    assert (block.highest_sequence, block.jitter, block.lsr, block.dlsr) == (
        (2 << 16) | 17,
        120,
        0x1234,
        0x5678,
    )


def test_receiver_report_clamps_the_cumulative_loss() -> None:
    (rr,) = RtcpPacket.parse(rtcp.receiver_report(1, 2, 0, 1 << 30, 0, 0, 0, 0))
    assert isinstance(rr, RtcpRrPacket) and rr.reports[0].packets_lost == 0x7FFFFF


@pytest.mark.parametrize(
    ("lost", "fci"),
    [
        ([5], "00050000"),
        ([5, 6, 21], "00058001"),  # 6 is bit 0, 21 (pid + 16) is bit 15
        ([21, 5, 22], "0005800000160000"),  # unsorted in; 22 needs an entry of its own
        ([65535, 0], "00000000ffff0000"),  # sorted numerically, as aiortc does
    ],
)
def test_nack_packs_like_rfc_4585(lost: list[int], fci: str) -> None:
    data = rtcp.nack(7, 9, lost)
    assert data[:12].hex() == f"81cd{2 + len(fci) // 8:04x}0000000700000009"
    assert data[12:].hex() == fci
    (packet,) = RtcpPacket.parse(data)
    assert isinstance(packet, RtcpRtpfbPacket) and packet.fmt == 1
    assert (packet.ssrc, packet.media_ssrc, sorted(packet.lost)) == (7, 9, sorted(lost))


def test_remb_parses_back_with_aiortc() -> None:
    data = rtcp.remb(3, 2_500_000, [0x11111111, 0x22222222])
    (packet,) = RtcpPacket.parse(data)
    assert isinstance(packet, RtcpPsfbPacket) and packet.fmt == 15
    assert (packet.ssrc, packet.media_ssrc) == (3, 0)
    bitrate, ssrcs = unpack_remb_fci(packet.fci)
    assert ssrcs == [0x11111111, 0x22222222]
    assert 2_500_000 - 2**4 < bitrate <= 2_500_000  # 18-bit mantissa: exact to the exponent


def test_pli_bytes() -> None:
    assert rtcp.pli(1, 2).hex() == "81ce00020000000100000002"


RR = bytes([0x80, 201, 0, 1, 0, 0, 0, 1])  # an RR with no report blocks
SDES = bytes([0x81, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0])
PLI = bytes([0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2])


@pytest.mark.parametrize(
    ("data", "skipped"),
    [(RR, True), (RR + SDES, True), (RR + PLI, False), (PLI, False), (RR[:6], False)],
)
def test_only_reports(data: bytes, skipped: bool) -> None:
    assert rtcp.only_reports(data) is skipped


async def test_reports_skip_the_parser_and_feedback_does_not() -> None:
    sender_pc, receiver_pc = new_pc(), new_pc()
    started = asyncio.Event()
    transceiver = sender_pc.addTransceiver(
        fastpath.IdleTrack("video", on_start=started.set), direction="sendonly"
    )
    rtcp.stop_sender_reports(transceiver.sender)
    nacked: list[int] = []
    fastpath.on_retransmit_request(transceiver.sender, nacked.append)
    handled: list[Any] = []
    probe.tap_sender_rtcp(transceiver.sender, handled.append)
    try:
        await negotiate(sender_pc, receiver_pc)
        await asyncio.wait_for(started.wait(), 10)
        rtcp.skip_receiver_reports(transceiver.sender.transport)
        rtcp.skip_receiver_reports(transceiver.sender.transport)  # idempotent
        receiver = receiver_pc.getTransceivers()[0].receiver
        ssrc = fastpath.ssrc(transceiver.sender)
        await eventually(
            lambda: "" if receiver_pc.connectionState == "connected" else "not connected"
        )
        await probe.send_nack(receiver, ssrc, [7])
        await eventually(lambda: "" if nacked == [7] else f"nacked {nacked}")
        await asyncio.sleep(2)  # the receiver's own RRs (every 0.5-1.5 s) would show up here
        kinds = {type(p).__name__ for p in handled}
        assert kinds == {"RtcpRtpfbPacket"}, kinds
    finally:
        await sender_pc.close()  # stop() must not wait for the retired RTCP task
        await receiver_pc.close()


class Sink:
    def __init__(self) -> None:
        self.losses: list[tuple[int, int]] = []
        self.rembs: list[tuple[int, list[int]]] = []

    def loss(self, ssrc: int, fraction: int) -> None:
        self.losses.append((ssrc, fraction))

    def remb(self, bitrate: int, ssrcs: list[int]) -> None:
        self.rembs.append((bitrate, ssrcs))


def block(ssrc: int, fraction: int) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(ssrc, fraction, 3, 1000, 5, 0, 0)


def test_read_feedback_takes_report_blocks_and_rembs() -> None:
    rr = bytes(RtcpRrPacket(ssrc=9, reports=[block(1, 12), block(2, 200)]))
    sdes = rtcp.sender_report(9, 0, 0, 0, 0, b"c")[28:]  # the SDES part
    remb = bytes(
        RtcpPsfbPacket(fmt=15, ssrc=9, media_ssrc=0, fci=pack_remb_fci(1_234_560, [1, 2, 3]))
    )
    sink = Sink()
    assert rtcp.read_feedback(rr + sdes + remb, sink) is False  # nothing else: ends here
    assert sink.losses == [(1, 12), (2, 200)]
    ((bitrate, ssrcs),) = sink.rembs
    assert ssrcs == [1, 2, 3] and abs(bitrate - 1_234_560) <= 1_234_560 >> 17  # 18-bit mantissa


def test_read_feedback_reads_an_sr_s_blocks_and_passes_the_rest_on() -> None:
    info = RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
    sr = bytes(RtcpSrPacket(ssrc=9, sender_info=info, reports=[block(5, 77)]))
    sink = Sink()
    assert rtcp.read_feedback(sr, sink) is True  # aiortc wants the SR (lip sync)
    assert sink.losses == [(5, 77)]
    pli = rtcp.pli(9, 5)
    rr = bytes(RtcpRrPacket(ssrc=9, reports=[]))
    assert rtcp.read_feedback(rr + pli, Sink()) is True
    assert rtcp.read_feedback(rr[:-1] + b"", Sink()) is True  # truncated: aiortc decides
