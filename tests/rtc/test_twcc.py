"""sfu.rtc.twcc: transport-cc feedback bytes, read back by a parser written from the draft.

`parse()` below follows draft-holmer-rmcat-transport-wide-cc-extensions-01 section 3.1 on its
own (it shares nothing with the builder), and returns what a sender learns: for each sequence
number, its arrival in 250 µs ticks since the reference time's origin, or None (lost).
"""

from __future__ import annotations

import struct

import pytest

from sfu.rtc.twcc import (
    LARGE_DELTA,
    NOT_RECEIVED,
    SMALL_DELTA,
    TransportFeedback,
    encode_chunks,
)


class Parsed:
    def __init__(self, data: bytes) -> None:
        first, pt, words = struct.unpack_from("!BBH", data)
        assert first >> 6 == 2 and first & 0x1F == 15 and pt == 205, "not an RTPFB FMT 15"
        assert (words + 1) * 4 == len(data), "length field"
        end = len(data)
        if first & 0x20:  # padding: the last byte counts it
            end -= data[-1]
        self.padded = bool(first & 0x20)
        self.sender_ssrc, self.media_ssrc, self.base, count, ref_fb = struct.unpack_from(
            "!LLHHL", data, 4
        )
        self.reference = ref_fb >> 8
        self.fb_count = ref_fb & 0xFF
        pos = 20
        symbols: list[int] = []
        while len(symbols) < count:
            (chunk,) = struct.unpack_from("!H", data, pos)
            pos += 2
            if not chunk & 0x8000:
                symbols += [(chunk >> 13) & 0x3] * (chunk & 0x1FFF)
            elif not chunk & 0x4000:
                symbols += [(chunk >> (13 - k)) & 0x1 for k in range(14)]
            else:
                symbols += [(chunk >> (12 - 2 * k)) & 0x3 for k in range(7)]
        self.symbols = symbols[:count]
        ticks = self.reference * 256
        self.arrivals: dict[int, int | None] = {}
        for i, symbol in enumerate(self.symbols):
            seq = (self.base + i) & 0xFFFF
            if symbol == NOT_RECEIVED:
                self.arrivals[seq] = None
                continue
            assert symbol in (SMALL_DELTA, LARGE_DELTA), f"reserved symbol at {seq}"
            if symbol == SMALL_DELTA:
                ticks += data[pos]
                pos += 1
            else:
                ticks += struct.unpack_from("!h", data, pos)[0]
                pos += 2
            self.arrivals[seq] = ticks
        assert pos <= end and end - pos < 4, "receive deltas do not fill the packet"


def ticks(seconds: float) -> int:
    return round(seconds * 4000)


def parse(data: bytes) -> Parsed:
    return Parsed(data)


def feed(fb: TransportFeedback, arrivals: dict[int, float]) -> list[Parsed]:
    for seq, at in arrivals.items():
        fb.add(seq, at)
    return [parse(p) for p in fb.build()]


def test_exact_bytes_of_a_small_feedback() -> None:
    # seq 10, 11 and 13 at 1.000, 1.001, 1.002 s: 4000, 4004, 4008 ticks; reference 15 (x 64 ms
    # = 3840 ticks); deltas 160, 4, 4; statuses 1 1 0 1 in a one-bit vector chunk (0xB400).
    fb = TransportFeedback(0x11111111, 0x22222222)
    for seq, at in ((10, 1.0), (11, 1.001), (13, 1.002)):
        fb.add(seq, at)
    (packet,) = fb.build()
    assert packet.hex() == (
        "af cd 0006 11111111 22222222 000a 0004 00000f00 b400 a0 04 04 000003".replace(" ", "")
    )


def test_in_order_packets_read_back_with_their_arrivals() -> None:
    fb = TransportFeedback(1, 2)
    arrivals = {seq: 5.0 + seq * 0.001 for seq in range(100, 160)}
    (parsed,) = feed(fb, arrivals)
    assert parsed.base == 100 and len(parsed.symbols) == 60
    assert set(parsed.symbols) == {SMALL_DELTA}
    for seq, at in arrivals.items():
        assert parsed.arrivals[seq] == ticks(at)


@pytest.mark.parametrize(
    ("seqs", "expected_base"),
    [
        ([65533, 65534, 65535, 0, 1, 2], 65533),  # the 16-bit wrap
        ([2, 65535, 0, 1, 65534], 65534),  # reordered across it
    ],
)
def test_sequence_numbers_wrap(seqs: list[int], expected_base: int) -> None:
    fb = TransportFeedback(1, 2)
    (parsed,) = feed(fb, {s: 1.0 + i * 0.002 for i, s in enumerate(seqs)})
    assert parsed.base == expected_base
    assert sorted(parsed.arrivals) == sorted(seqs)
    assert all(v is not None for v in parsed.arrivals.values())


def test_losses_reordering_and_long_gaps() -> None:
    fb = TransportFeedback(1, 2)
    arrivals = {
        1: 10.0,
        2: 10.001,
        # 3, 4 lost
        6: 10.002,  # arrives before 5: a negative delta for 6
        5: 10.003,
        7: 10.2,  # 198 ms later: a large delta
        8: 10.2001,
    }
    (parsed,) = feed(fb, arrivals)
    assert parsed.arrivals[3] is None and parsed.arrivals[4] is None
    for seq, at in arrivals.items():
        assert parsed.arrivals[seq] == ticks(at), seq
    assert parsed.symbols == [1, 1, 0, 0, 1, 2, 2, 1]


def test_a_long_run_of_losses_is_one_run_length_chunk() -> None:
    fb = TransportFeedback(1, 2)
    (parsed,) = feed(fb, {0: 1.0, 300: 1.01})
    assert parsed.symbols == [1] + [0] * 299 + [1]
    assert len(encode_chunks(parsed.symbols)) <= 8  # 1, run of 299, 1
    assert parsed.arrivals[300] == ticks(1.01)


def test_a_gap_too_long_for_a_delta_starts_a_new_packet() -> None:
    fb = TransportFeedback(1, 2)
    first, second = feed(fb, {7: 1.0, 8: 20.0, 9: 20.001})  # 19 s: past the 16-bit delta
    assert (first.base, sorted(first.arrivals)) == (7, [7])
    assert (second.base, sorted(second.arrivals)) == (8, [8, 9])
    assert second.arrivals[8] == ticks(20.0)
    assert (first.fb_count, second.fb_count) == (0, 1)


def test_each_build_goes_on_from_the_last_and_late_packets_are_ignored() -> None:
    fb = TransportFeedback(1, 2)
    (a,) = feed(fb, {10: 1.0, 12: 1.001})
    assert a.arrivals == {10: 4000, 11: None, 12: 4004}
    assert fb.build() == []  # nothing new
    # 11 arrives now: it was reported lost already, and is ignored.
    (b,) = feed(fb, {11: 1.1, 14: 1.101})
    assert b.base == 13 and b.arrivals == {13: None, 14: ticks(1.101)}
    assert b.fb_count == a.fb_count + 1


def test_big_windows_are_split_and_capped() -> None:
    fb = TransportFeedback(1, 2)
    packets = feed(fb, {seq: 1.0 + seq * 0.0001 for seq in range(1000)})
    assert len(packets) == 4  # at most 250 received packets each
    covered = [seq for p in packets for seq in p.arrivals]
    assert covered == list(range(1000))
    assert all(len(p.arrivals) <= 250 for p in packets)
    # A jump far ahead: only the last MAX_RANGE numbers are reported.
    packets = feed(fb, {1000: 2.0, 9000: 2.1})
    assert packets[0].base == 9000 - 4000 + 1
    assert sum(len(p.arrivals) for p in packets) == 4000


def test_padding_is_counted_in_the_last_byte() -> None:
    for n in range(1, 9):
        fb = TransportFeedback(1, 2)
        (packet,) = feed_raw(fb, n)
        parsed = parse(packet)
        assert len(packet) % 4 == 0
        if parsed.padded:
            assert 1 <= packet[-1] <= 3 and not any(packet[-packet[-1] : -1])


def feed_raw(fb: TransportFeedback, n: int) -> list[bytes]:
    for seq in range(n):
        fb.add(seq, 1.0 + seq * 0.001)
    return fb.build()


@pytest.mark.parametrize(
    ("statuses", "chunks"),
    [
        ([1] * 20, ["2014"]),  # run length: symbol 1, 20
        ([2] * 8, ["4008"]),  # run of 8 large deltas
        ([1, 0] * 7, ["aaaa"]),  # 14 one-bit symbols: 1010...
        ([1, 2, 0], ["d800"]),  # 7 two-bit symbols: 01 10 00 ...
        ([0] * 8191 + [0], ["1fff", "8000"]),  # a run is at most 8191 long
    ],
)
def test_chunk_encodings(statuses: list[int], chunks: list[str]) -> None:
    assert encode_chunks(statuses).hex() == "".join(chunks)
