"""Hooks: sfu.rtc.ingress (SRTP RTP straight from the socket), on a real pair over 127.0.0.1.

The sender is plain aiortc: its packets carry header extensions (mid, abs-send-time...). What it
sent is recorded in clear, before SRTP (sfu.rtc.probe taps its DTLS transport), so what a
handler gets can be compared, field by field, with what aiortc's own parser makes of the packet.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtpPacket, is_rtcp

from sfu.media import TestPatternTrack
from sfu.rtc import fastpath, probe
from sfu.rtc import receiver as rtc_receiver
from sfu.rtc.ingress import RtpIngress, transport_seq
from sfu.speakers import AudioLevel
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually

# (payload_type, marker, sequence_number, timestamp, payload), as a handler gets it
Handled = tuple[int, int, int, int, bytes]


@dataclass
class Pair:
    sender_pc: RTCPeerConnection
    receiver_pc: RTCPeerConnection
    sender_dtls: Any = None
    receiver: Any = None
    ssrc: int = 0
    payload_type: int = 0
    tapped: list[int] = field(default_factory=list)  # seqs aiortc's path saw (media SSRC)
    sent: dict[int, bytes] = field(default_factory=dict)  # seq -> RTP in clear, as sent

    @property
    def dtls(self) -> Any:
        return self.receiver.transport

    @property
    def conn(self) -> Any:
        return probe.ice_connection(self.receiver.transport)

    def counts(self) -> int:
        """Media packets aiortc's receiver has counted."""
        return rtc_receiver.rtp_counts(self.receiver)[0]


def collect(into: list[Handled]) -> Callable[[int, int, int, int, bytes], None]:
    def handler(pt: int, marker: int, seq: int, timestamp: int, payload: bytes) -> None:
        assert isinstance(payload, bytes)
        into.append((pt, marker, seq, timestamp, payload))

    return handler


def more(items: list[Any], n: int, what: str) -> Callable[[], str]:
    """A check for eventually(): at least n more items than now."""
    target = len(items) + n

    def check() -> str:
        return "" if len(items) >= target else f"{len(items)}/{target} {what}"

    return check


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    sender_pc, receiver_pc = new_pc(), new_pc()
    transceiver = sender_pc.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    p = Pair(sender_pc, receiver_pc)

    @receiver_pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = receiver_pc.getTransceivers()[0].receiver

        def tap(packet: RtpPacket) -> bool:
            if packet.ssrc == p.ssrc:
                p.tapped.append(packet.sequence_number)
            return False  # aiortc still handles it

        fastpath.tap_rtp(receiver, tap)

    try:
        await negotiate(sender_pc, receiver_pc)
        p.ssrc = fastpath.ssrc(transceiver.sender)
        (received,) = receiver_pc.getTransceivers()
        p.receiver = received.receiver
        codec = fastpath.negotiated_codec(received)
        assert codec is not None and codec.mimeType == "video/VP8"
        assert codec.payloadType is not None
        p.payload_type = codec.payloadType

        p.sender_dtls = dtls = transceiver.sender.transport

        def record(data: bytes) -> None:
            if not is_rtcp(data) and int.from_bytes(data[8:12], "big") == p.ssrc:
                p.sent[int.from_bytes(data[2:4], "big")] = data

        probe.tap_sent_rtp(dtls, record)
        await eventually(more(p.tapped, 10, "packets on aiortc's path"), timeout=10)
        yield p
    finally:
        await sender_pc.close()
        await receiver_pc.close()


async def test_registered_packets_skip_aiortc_and_match_its_parser(pair: Pair) -> None:
    ingress = RtpIngress(pair.dtls)
    assert ingress.dtls is pair.dtls
    handled: list[Handled] = []
    ingress.register(pair.ssrc, collect(handled))
    assert "data_received" in vars(pair.conn)  # hooked on the instance

    # Datagrams aioice queued before the hook still take aiortc's path: let them drain.
    await eventually(more(handled, 10, "handled"), timeout=5)
    counted, tapped = pair.counts(), len(pair.tapped)
    assert counted > 0
    await eventually(more(handled, 40, "handled"), timeout=10)
    assert pair.counts() == counted, "aiortc's receiver still counts registered packets"
    assert len(pair.tapped) == tapped, "aiortc's path still sees registered packets"
    assert ingress.dropped == 0

    seqs = [h[2] for h in handled]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs)), seqs
    assert {h[0] for h in handled} == {pair.payload_type}
    for (_, marker, _, ts, _), (_, _, _, next_ts, _) in itertools.pairwise(handled):
        # A frame ends on its marker: the next packet starts another one (timestamp).
        assert bool(marker) == (next_ts != ts), (marker, ts, next_ts)

    # Field by field what aiortc's parser makes of the same packet, as the sender sent it.
    with_extensions = 0
    for pt, marker, seq, ts, payload in handled:
        raw = pair.sent[seq]
        with_extensions += bool(raw[0] & 0x10)
        parsed = RtpPacket.parse(raw)
        assert (pt, marker, seq, ts, payload) == (
            parsed.payload_type,
            parsed.marker,
            parsed.sequence_number,
            parsed.timestamp,
            parsed.payload,
        )
    assert with_extensions == len(handled), "aiortc's sender sent no header extensions?"
    ingress.close()


async def test_payloads_start_with_the_vp8_descriptor_and_a_keyframe_arrives(
    pair: Pair,
) -> None:
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(pair.ssrc, collect(handled))
    await eventually(more(handled, 3, "handled"), timeout=5)
    await probe.send_pli(pair.receiver, pair.ssrc)  # aiortc's encoder is pinned: ask for a key

    def keyframe_tag(payload: bytes) -> bool:
        descriptor, data = VpxPayloadDescriptor.parse(payload)
        return bool(
            descriptor.partition_start
            and descriptor.partition_id == 0
            and len(data) >= 6
            and not data[0] & 0x01
            and data[3:6] == b"\x9d\x01\x2a"
        )

    await eventually(
        lambda: "" if any(keyframe_tag(h[4]) for h in handled) else "no keyframe", timeout=10
    )
    for *_, payload in handled:
        descriptor, data = VpxPayloadDescriptor.parse(payload)  # raises on garbage
        assert data
        assert descriptor.partition_id == 0  # aiortc's VP8 packetizer: one partition
    ingress.close()


async def test_unregister_hands_the_packets_back_to_aiortc(pair: Pair) -> None:
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(pair.ssrc, collect(handled))
    await eventually(more(handled, 10, "handled"), timeout=5)

    ingress.unregister(pair.ssrc)
    ingress.unregister(pair.ssrc)  # twice: harmless
    ingress.unregister(0x1234)  # never registered: harmless
    stop = len(handled)
    counted, tapped = pair.counts(), len(pair.tapped)
    await eventually(more(pair.tapped, 10, "packets on aiortc's path again"), timeout=5)
    await eventually(lambda: "" if pair.counts() > counted else "aiortc counts nothing")
    assert len(handled) == stop
    # Back where they left: the first one aiortc saw again follows the last one handled.
    assert pair.tapped[tapped] == (handled[-1][2] + 1) & 0xFFFF
    ingress.close()


async def test_close_restores_data_received(pair: Pair) -> None:
    conn = pair.conn
    original = conn.data_received
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(pair.ssrc, collect(handled))
    assert conn.data_received != original
    await eventually(more(handled, 5, "handled"), timeout=5)

    ingress.close()
    # The connection's own method again (close() puts the bound method back as an instance
    # attribute rather than deleting the hook's: the same method all the same).
    assert conn.data_received == original
    assert conn.data_received == type(conn).data_received.__get__(conn)
    assert conn.data_received.__func__ is type(conn).data_received
    stop, counted = len(handled), pair.counts()
    await eventually(more(pair.tapped, 10, "packets on aiortc's path again"), timeout=5)
    await eventually(lambda: "" if pair.counts() > counted else "aiortc counts nothing")
    assert len(handled) == stop
    ingress.close()  # twice: harmless
    assert conn.data_received == original

    # Registering again hooks the connection again.
    ingress.register(pair.ssrc, collect(handled))
    await eventually(more(handled, 5, "handled after a new register"), timeout=5)
    ingress.close()
    assert conn.data_received == original


def hold_one(conn: Any, ssrc: int) -> list[bytes]:
    """Keep the next SRTP datagram of `ssrc` from the connection (as the network would lose
    it) and return it, still encrypted, in the list; the ICE sockets' datagram callbacks are
    wrapped (an aioice internal)."""
    held: list[bytes] = []

    def holding(receive: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        def datagram_received(data: bytes, addr: Any) -> None:
            if (
                not held
                and len(data) > 12
                and 127 < data[0] < 192
                and int.from_bytes(data[8:12], "big") == ssrc
            ):
                held.append(bytes(data))
                return
            receive(data, addr)

        return datagram_received

    for protocol in probe.sockets(conn):
        protocol.datagram_received = holding(protocol.datagram_received)
    return held


async def test_forged_packets_are_dropped_before_the_handler(pair: Pair) -> None:
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(pair.ssrc, collect(handled))
    await eventually(more(handled, 5, "handled"), timeout=5)
    held = hold_one(pair.conn, pair.ssrc)
    await eventually(lambda: "" if held else "no datagram held", timeout=5)
    (data,) = held
    seq = int.from_bytes(data[2:4], "big")
    conn = pair.conn

    def seen(seq: int) -> bool:
        return any(h[2] == seq for h in handled)

    bad_tag = bytearray(data)
    bad_tag[-1] ^= 0x01  # the last byte of the authentication tag
    bad_payload = bytearray(data)
    bad_payload[len(data) // 2] ^= 0x80
    conn.data_received(bytes(bad_tag), 1)
    conn.data_received(bytes(bad_payload), 1)
    assert ingress.dropped == 2
    assert not seen(seq)
    counted = pair.counts()

    # The untouched original still gets through (libsrtp did not take the forgeries for it)...
    conn.data_received(data, 1)
    assert ingress.dropped == 2
    assert seen(seq)
    (got,) = [h for h in handled if h[2] == seq]
    assert got[4] == RtpPacket.parse(pair.sent[seq]).payload
    # ...once: a replay is dropped as well.
    conn.data_received(data, 1)
    assert ingress.dropped == 3
    assert len([h for h in handled if h[2] == seq]) == 1
    assert pair.counts() == counted  # none of them reached aiortc's receiver
    ingress.close()


def rtp(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: int = 0,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
    padding: int = 0,
    padding_byte: int | None = None,
) -> bytes:
    """An RTP packet in clear, by hand: CSRCs, a header extension, padding as asked."""
    b0 = 0x80 | len(csrcs) | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", b0, (marker << 7) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        assert len(extension) % 4 == 0
        out += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    out += payload
    if padding:
        last = padding if padding_byte is None else padding_byte
        out += bytes(padding - 1) + bytes([last])
    return out


async def test_csrcs_extensions_and_padding_are_stripped(pair: Pair) -> None:
    # Packets written by hand, protected and sent by the sender's DTLS transport on an SSRC of
    # their own (so they never collide with the real stream in libsrtp's replay window).
    ssrc = 0x0A0B0C0D
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(ssrc, collect(handled))
    ext = bytes([0x10, 0x01, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00])  # two elements, padded
    packets = [
        (rtp(100, 7, 900, ssrc, b"plain"), (100, 0, 7, 900, b"plain")),
        (rtp(100, 8, 900, ssrc, b"csrc", csrcs=(1, 2)), (100, 0, 8, 900, b"csrc")),
        (rtp(100, 9, 900, ssrc, b"ext", extension=ext), (100, 0, 9, 900, b"ext")),
        (rtp(100, 10, 900, ssrc, b"pad", padding=4), (100, 0, 10, 900, b"pad")),
        (
            rtp(101, 11, 3900, ssrc, b"all", marker=1, csrcs=(3,), extension=ext, padding=7),
            (101, 1, 11, 3900, b"all"),
        ),
        (rtp(100, 12, 3900, ssrc, b"", extension=ext), (100, 0, 12, 3900, b"")),
    ]
    for data, _ in packets:
        parsed = RtpPacket.parse(data)  # what aiortc's parser would give
        assert parsed.payload in (b"plain", b"csrc", b"ext", b"pad", b"all", b"")
        await probe.send_rtp(pair.sender_dtls, data)
    await eventually(more(handled, len(packets), "hand-made packets"), timeout=5)
    assert handled == [expected for _, expected in packets]
    assert ingress.dropped == 0

    # Padding longer than the payload and header: a broken packet, dropped.
    await probe.send_rtp(
        pair.sender_dtls, rtp(100, 13, 3900, ssrc, b"x", padding=4, padding_byte=200)
    )
    await eventually(lambda: "" if ingress.dropped == 1 else "not dropped", timeout=5)
    assert len(handled) == len(packets)
    ingress.close()


async def test_reports_end_in_the_hook_and_feedback_reaches_aiortc(pair: Pair) -> None:
    # The RTCP direction: the sender's transport hears the receiver's reports and feedback.
    dtls = pair.sender_dtls
    reached: list[bytes] = []
    probe.tap_received_rtcp(dtls, reached.append)
    ingress = RtpIngress(dtls)
    ingress.install()
    try:
        # aiortc's receiver sends a receiver report every 0.5-1.5 s.
        await eventually(lambda: "" if ingress.reports >= 2 else "no report yet", timeout=5)
        assert reached == [] and ingress.dropped == 0
        await probe.send_pli(pair.receiver, pair.ssrc)
        await eventually(lambda: "" if reached else "the PLI did not reach aiortc", timeout=5)
        (packet,) = RtcpPacket.parse(reached[0])  # decrypted, as aiortc's handler expects
        assert isinstance(packet, RtcpPsfbPacket) and packet.media_ssrc == pair.ssrc
    finally:
        ingress.close()


async def test_transport_wide_sequence_numbers_are_recorded(pair: Pair) -> None:
    ssrc = 0x0B0C0D0E
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    ingress.register(ssrc, collect(handled))
    twcc = ingress.use_transport_cc(5, sender_ssrc=0x1234)
    assert ingress.use_transport_cc(5, sender_ssrc=0x1234) is twcc  # idempotent
    abs_send_time = bytes([0x22, 0x01, 0x02, 0x03])  # id 2, 3 bytes
    numbered = [
        # (extension elements, transport-wide number it carries)
        (bytes([0x51, 0xFF, 0xFC, 0x00]), 0xFFFC),  # alone, padded
        (abs_send_time + bytes([0x51, 0xFF, 0xFD, 0x00]), 0xFFFD),  # after another element
        (bytes([0x00, 0x00]) + bytes([0x51, 0xFF, 0xFE]) + bytes(3), 0xFFFE),  # after padding
        (bytes([0x51, 0xFF, 0xFF, 0x00]), 0xFFFF),
        (bytes([0x51, 0x00, 0x00, 0x00]), 0x0000),  # wraps
    ]
    ignored = [
        abs_send_time,  # no number
        bytes([0xF0, 0x51, 0x12, 0x34]),  # after ID 15, which ends the elements
        bytes([0x52, 0x12, 0x34, 0x56]),  # id 5 but 3 bytes long: not a number
    ]
    seq = 20
    for elements in [e for e, _ in numbered] + ignored:
        await probe.send_rtp(pair.sender_dtls, rtp(100, seq, 0, ssrc, b"x", extension=elements))
        seq += 1
    # A two-byte-header extension (RFC 8285 4.3) is not read.
    two_byte = rtp(100, seq, 0, ssrc, b"x", extension=bytes([5, 2, 0x12, 0x34]))
    two_byte = two_byte[:12] + b"\x10\x00" + two_byte[14:]
    await probe.send_rtp(pair.sender_dtls, two_byte)
    await eventually(more(handled, len(numbered) + len(ignored) + 1, "hand-made packets"), 5)
    assert ingress.dropped == 0
    assert [seq for seq, _ in twcc.received] == [seq for _, seq in numbered]
    (feedback,) = twcc.build()
    base, count = struct.unpack_from("!HH", feedback, 12)
    assert (base, count) == (0xFFFC, 5)  # all received (one-bit vector: 5 ones)
    assert feedback[20:22] == b"\xbe\x00"
    ingress.close()


async def test_audio_levels_are_read_in_the_same_pass(pair: Pair) -> None:
    audio, video = 0x0C0D0E0F, 0x0D0E0F10
    ingress = RtpIngress(pair.dtls)
    handled: list[Handled] = []
    level = AudioLevel()
    ingress.register(audio, collect(handled), level)
    ingress.register(video, collect(handled))
    twcc = ingress.use_transport_cc(5, sender_ssrc=0x1234)
    ingress.use_audio_level(1)
    packets = [
        # (SSRC, extension elements) as Chromium sends audio: level (id 1, V bit set), number
        (audio, bytes([0x10, 0x80 | 30, 0x51, 0x00, 0x01, 0x00, 0x00, 0x00])),
        (audio, bytes([0x51, 0x00, 0x02, 0x10, 40, 0x00, 0x00, 0x00])),  # the other order
        (audio, bytes([0x10, 127, 0x00, 0x00])),  # silence, no number
        (video, bytes([0x10, 5, 0x51, 0x00, 0x03])),  # id 1 on a video SSRC: not a level
    ]
    for seq, (ssrc, elements) in enumerate(packets, 40):
        elements += bytes(-len(elements) % 4)
        await probe.send_rtp(pair.sender_dtls, rtp(100, seq, 0, ssrc, b"x", extension=elements))
    await eventually(more(handled, len(packets), "hand-made packets"), 5)
    assert (level.count, level.total) == (3, 30 + 40 + 127)
    assert len(twcc.received) == 3
    ingress.unregister(audio)
    await probe.send_rtp(pair.sender_dtls, rtp(100, 50, 0, audio, b"x", extension=packets[0][1]))
    await asyncio.sleep(0.1)
    assert level.count == 3  # no longer ours: aiortc's path has it
    ingress.close()


async def test_transport_wide_numbers_on_aiortcs_path_are_recorded_once_decrypted(
    pair: Pair,
) -> None:
    # An SSRC nobody registered (as Chromium's first probes on an RTX SSRC): aiortc's path.
    ssrc = 0x0C0D0E0F
    ingress = RtpIngress(pair.dtls)
    ingress.install()
    twcc = ingress.use_transport_cc(5, sender_ssrc=0x1234)
    before = time.monotonic()
    for seq, number in ((30, 0x0102), (31, 0x0103)):
        elements = bytes([0x51, number >> 8, number & 0xFF, 0x00])
        await probe.send_rtp(pair.sender_dtls, rtp(100, seq, 0, ssrc, b"x", extension=elements))

    def recorded() -> str:
        return "" if len(twcc.received) >= 2 else f"recorded {twcc.received}"

    await eventually(recorded, timeout=5)
    assert [seq for seq, _ in twcc.received] == [0x0102, 0x0103]
    # The time its datagram reached the hook, not when aiortc's task got to it.
    assert all(before <= at <= time.monotonic() for _, at in twcc.received)
    assert ingress._early == {}
    ingress.close()


@pytest.mark.parametrize(
    ("packet", "number"),
    [
        (rtp(96, 1, 0, 1, b"x", extension=bytes([0x51, 0x12, 0x34, 0x00])), 0x1234),
        (rtp(96, 1, 0, 1, b"x", extension=bytes([0x22, 1, 2, 3, 0x51, 0xAB, 0xCD, 0])), 0xABCD),
        (rtp(96, 1, 0, 1, b"x", csrcs=(7,), extension=bytes([0x51, 0, 9, 0])), 9),
        (rtp(96, 1, 0, 1, b"x", extension=bytes([0x22, 1, 2, 3])), None),  # not there
        (rtp(96, 1, 0, 1, b"x"), None),  # no extension at all
        (rtp(96, 1, 0, 1, b"x", extension=bytes([0x51, 0x12, 0x34, 0x00]))[:17], None),  # cut
    ],
)
def test_transport_seq_reads_the_clear_header(packet: bytes, number: int | None) -> None:
    assert transport_seq(packet, 5) == number
