"""sfu.inbound: reception statistics and missing packets of one publisher stream."""

from __future__ import annotations

from sfu.inbound import MAX_GAP, MAX_MISSING, NACK_TRIES, InboundStream


def feed(stream: InboundStream, seqs: list[int], ts_step: int = 3000) -> list[list[int]]:
    gaps = []
    for i, seq in enumerate(seqs):
        lost = stream.add(seq, 90000 + i * ts_step, i / 30)
        if lost:
            gaps.append(lost)
    return gaps


def test_in_order_stream_counts_no_loss() -> None:
    stream = InboundStream(0xAB, 90000, 100)
    assert feed(stream, list(range(100, 150))) == []
    assert (stream.received, stream.expected, stream.lost) == (50, 50, 0)
    assert stream.highest_sequence == 149
    assert stream.fraction_lost() == 0
    assert stream.missing == {}


def test_a_gap_is_reported_once_and_filled_by_a_retransmission() -> None:
    stream = InboundStream(1, 90000, 10)
    assert feed(stream, [10, 11, 14, 15]) == [[12, 13]]
    assert (stream.expected, stream.received, stream.lost) == (6, 4, 2)
    assert stream.fraction_lost() == (2 << 8) // 6
    assert stream.recovered(12) is True
    assert stream.recovered(12) is False  # already filled
    assert stream.recovered(99) is False  # never missing: a probe or duplicate
    assert stream.lost == 1 and list(stream.missing) == [13]
    assert stream.fraction_lost() == 0  # nothing new expected since the last report


def test_a_late_packet_fills_its_hole_without_a_new_gap() -> None:
    stream = InboundStream(1, 90000, 10)
    assert feed(stream, [10, 12, 11, 13]) == [[11]]
    assert stream.missing == {} and stream.lost == 0


def test_sequence_numbers_wrap_into_a_new_cycle() -> None:
    stream = InboundStream(1, 90000, 65534)
    assert feed(stream, [65534, 65535, 0, 2]) == [[1]]
    assert stream.highest_sequence == (1 << 16) | 2
    assert (stream.expected, stream.received) == (5, 4)


def test_a_stream_starting_at_zero_has_no_phantom_cycle() -> None:
    stream = InboundStream(1, 90000, 0)
    feed(stream, [0, 1, 2])
    assert stream.highest_sequence == 2 and stream.lost == 0


def test_a_long_jump_is_a_restart_not_loss_to_nack() -> None:
    stream = InboundStream(1, 90000, 0)
    assert feed(stream, [0, 1, 2 + MAX_GAP + 1]) == []
    assert stream.missing == {}
    assert stream.unrepaired == 1  # what follows cannot be decoded: a keyframe is needed


def test_missing_packets_are_asked_for_a_bounded_number_of_times() -> None:
    stream = InboundStream(1, 90000, 0)
    feed(stream, [0, 3])
    asked = [stream.nack_again() for _ in range(NACK_TRIES + 1)]
    assert asked == [[1, 2]] * (NACK_TRIES - 1) + [[], []]
    assert stream.missing == {}
    assert stream.unrepaired == 1  # one gap given up, whatever its length


def test_a_gap_filled_in_time_is_not_unrepaired() -> None:
    stream = InboundStream(1, 90000, 0)
    feed(stream, [0, 3])
    assert stream.recovered(1) and stream.recovered(2)
    for _ in range(NACK_TRIES + 1):
        assert stream.nack_again() == []
    assert stream.unrepaired == 0


def test_the_missing_set_is_bounded() -> None:
    stream = InboundStream(1, 90000, 0)
    seq = 0
    for _ in range(2 * MAX_MISSING // MAX_GAP + 2):
        seq += MAX_GAP + 1  # each jump loses MAX_GAP packets, the most one gap reports
        stream.add(seq, 0, 0.0)
    assert len(stream.missing) == MAX_MISSING
    assert max(stream.missing) == seq - 1  # the newest are kept


def test_jitter_follows_rfc_3550() -> None:
    stream = InboundStream(1, 1000, 0)
    # Frames every 10 ms of media time; the second arrives 4 ms late: |D| = 4 clock units.
    stream.add(0, 0, 0.000)
    stream.add(1, 10, 0.014)
    assert stream.jitter_q4 == 4  # J += (|D| - J) / 16, kept times 16
    stream.add(2, 10, 0.050)  # same frame: no new jitter sample
    assert stream.jitter_q4 == 4
    stream.add(3, 30, 0.034)  # as late as the last one: |D| = 0
    assert stream.jitter_q4 == 4 - ((4 + 8) >> 4)
    stream.add(4, 40, 0.040)  # on time again: |D| = 4
    assert stream.jitter_q4 == 8 and stream.jitter == 0


def test_jitter_ignores_the_timestamp_wrap() -> None:
    stream = InboundStream(1, 1000, 0)
    stream.add(0, 0xFFFFFFF6, 0.0)
    stream.add(1, 0, 0.010)  # 10 units later in both clocks, across the wrap
    assert stream.jitter_q4 == 0
