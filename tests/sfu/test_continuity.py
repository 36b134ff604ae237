"""sfu.continuity: where a subscriber's stream goes on after a layer switch (input -> output)."""

from __future__ import annotations

import pytest

from sfu.continuity import Offsets, Packet, after_switch, capture_on
from sfu.payload import vp8_picture_ids

CLOCK = 90000


def vp8(picture_id: int, tl0: int, *, key: bool = False, wide: bool = True) -> bytes:
    """A VP8 payload: descriptor with X, S, PictureID (7 or 15 bits) and TL0PICIDX."""
    ids = bytes([0x80 | picture_id >> 8, picture_id & 0xFF]) if wide else bytes([picture_id])
    return bytes([0x90, 0xC0]) + ids + bytes([tl0, 0x00 if key else 0x01]) + b"vp8"


def test_vp8_picture_ids_of_a_descriptor() -> None:
    assert vp8_picture_ids(vp8(0x1234, 7)) == (0x1234, 15, 7)
    assert vp8_picture_ids(vp8(0x55, 200, wide=False)) == (0x55, 7, 200)
    assert vp8_picture_ids(bytes([0x90, 0x80, 0x81, 0x02, 0x00])) == (0x102, 15, -1)  # no L
    assert vp8_picture_ids(bytes([0x10, 0x00])) is None  # no X: no PictureID
    assert vp8_picture_ids(bytes([0x90, 0x80, 0x81])) is None  # cut short


@pytest.mark.parametrize(
    ("old", "last", "key", "since", "expected"),
    [
        # The keyframe follows the old layer's newest packet: +1 sequence number, the time since.
        (Offsets(100, 5000), Packet(10, 3000, b""), Packet(700, 9000, b""), 0.05, (-589, 3500)),
        # Sequence numbers and timestamps wrap.
        (
            Offsets(0xFFF0, 0xFFFFFF00),
            Packet(0x20, 0x10, b""),
            Packet(5, 1 << 31, b""),
            0.0,
            (12, 0x7FFFFF11),
        ),
    ],
)
def test_sequence_numbers_and_timestamps_go_on(
    old: Offsets, last: Packet, key: Packet, since: float, expected: tuple[int, int]
) -> None:
    new = after_switch(old, last, key, since_last=since, clock_rate=CLOCK)
    seq, ts = expected
    assert new.seq == seq & 0xFFFF and new.ts == ts & 0xFFFFFFFF
    out_last = ((last.seq + old.seq) & 0xFFFF, (last.timestamp + old.ts) & 0xFFFFFFFF)
    out_key = ((key.seq + new.seq) & 0xFFFF, (key.timestamp + new.ts) & 0xFFFFFFFF)
    assert (out_key[0] - out_last[0]) & 0xFFFF == 1
    assert (out_key[1] - out_last[1]) & 0xFFFFFFFF == max(1, int(since * CLOCK))


def test_sender_reports_put_the_keyframe_on_the_old_clock() -> None:
    # Both layers' clocks at one instant: old 1000 at NTP 10 s, new 50000 at NTP 10.5 s.
    old_report, new_report = (10 << 32, 1000), ((10 << 32) + (1 << 31), 50000)
    assert capture_on(50000, new_report, old_report, CLOCK) == 1000 + 45000
    # The keyframe was captured 0.2 s after the old layer's newest frame (arrival says 0.05 s).
    last = Packet(1, 1000 + 45000 - 18000, b"")
    key = Packet(2, 50000, b"")
    new = after_switch(
        Offsets(0, 0),
        last,
        key,
        since_last=0.05,
        clock_rate=CLOCK,
        old_report=old_report,
        new_report=new_report,
    )
    assert (key.timestamp + new.ts) & 0xFFFFFFFF == 1000 + 45000
    # Reports that disagree with the wall clock by more than half a second are not believed.
    wild = after_switch(
        Offsets(0, 0),
        last,
        key,
        since_last=0.05,
        clock_rate=CLOCK,
        old_report=old_report,
        new_report=(new_report[0] + (5 << 32), new_report[1]),
    )
    assert (key.timestamp + wild.ts) & 0xFFFFFFFF == last.timestamp + 4500


def test_a_keyframe_never_goes_back_in_time() -> None:
    # The new layer's keyframe is of a frame the old layer already sent: one tick later.
    old_report, new_report = (10 << 32, 1000), (10 << 32, 7000)
    new = after_switch(
        Offsets(0, 0),
        Packet(1, 1000 + 3000, b""),
        Packet(2, 7000, b""),
        since_last=0.0,
        clock_rate=CLOCK,
        old_report=old_report,
        new_report=new_report,
    )
    assert (7000 + new.ts) & 0xFFFFFFFF == 4001


@pytest.mark.parametrize(
    ("last", "key", "old", "expected"),
    [
        (
            vp8(100, 7),
            vp8(30000, 250, key=True),
            (0, 0),
            ((101 - 30000) & 0x7FFF, (8 - 250) & 0xFF),
        ),
        (vp8(0x7FFF, 255), vp8(0, 0, key=True), (0, 0), (0, 0)),  # both wrap to 0
        (vp8(5, 9), vp8(9, 1, key=True), (3, 4), (0, 13)),  # old offsets count
        (vp8(5, 9), vp8(9, 1, key=True, wide=False), (0, 0), ((6 - 9) & 0x7F, 9)),  # 7 bits
    ],
)
def test_vp8_picture_numbering_goes_on(
    last: bytes, key: bytes, old: tuple[int, int], expected: tuple[int, int]
) -> None:
    new = after_switch(
        Offsets(0, 0, *old),
        Packet(1, 0, last),
        Packet(2, 0, key),
        since_last=0.0,
        clock_rate=CLOCK,
        vp8=True,
    )
    assert (new.picture_id, new.tl0) == expected
    plain = after_switch(
        Offsets(0, 0, *old), Packet(1, 0, last), Packet(2, 0, key), since_last=0.0, clock_rate=CLOCK
    )
    assert (plain.picture_id, plain.tl0) == old  # not VP8: untouched
