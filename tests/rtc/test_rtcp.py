"""Hooks: sfu.rtc.rtcp (lean sender reports, receiver reports kept from aiortc's parser)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc.rtp import RtcpPacket, RtcpSdesPacket, RtcpSrPacket

from sfu.rtc import fastpath, rtcp
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
    handle = transceiver.sender._handle_rtcp_packet

    async def spy(packet: Any) -> None:
        handled.append(packet)
        await handle(packet)

    transceiver.sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
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
        await receiver._send_rtcp_nack(ssrc, [7])
        await eventually(lambda: "" if nacked == [7] else f"nacked {nacked}")
        await asyncio.sleep(2)  # the receiver's own RRs (every 0.5-1.5 s) would show up here
        kinds = {type(p).__name__ for p in handled}
        assert kinds == {"RtcpRtpfbPacket"}, kinds
    finally:
        await sender_pc.close()  # stop() must not wait for the retired RTCP task
        await receiver_pc.close()
