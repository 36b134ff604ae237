"""sfu.bwe: a subscriber's downlink estimate from its REMBs and receiver reports."""

from __future__ import annotations

import pytest

from sfu.bwe import REMB_TIMEOUT, DownlinkEstimate


def test_nothing_known_no_estimate() -> None:
    assert DownlinkEstimate().update(1_000_000, 0.0) is None


def test_one_remb_for_everything_is_the_estimate() -> None:
    e = DownlinkEstimate()
    e.remb(1_200_000, [1, 2, 3], 0.0)
    assert e.update(800_000, 0.1) == 1_200_000
    e.remb(900_000, [1, 2], 1.0)  # Chromium's next one (a stream fewer): replaces it
    assert e.update(800_000, 1.1) == 900_000
    assert e.update(800_000, 1.0 + REMB_TIMEOUT) is None  # too old


def test_rembs_per_stream_add_up() -> None:
    # aiortc: one REMB per receiver, each for its own stream (media and RTX SSRCs).
    e = DownlinkEstimate()
    e.remb(600_000, [10, 11], 0.0)
    e.remb(400_000, [20, 21], 0.1)
    assert e.update(0, 0.2) == 1_000_000
    e.remb(500_000, [20, 21], 1.0)
    assert e.update(0, 1.1) == 1_100_000


def test_high_loss_cuts_what_we_send_once_per_report() -> None:
    e = DownlinkEstimate()
    e.remb(3_000_000, [1], 0.0)
    e.loss(1, 64, 0.5)  # 25 % lost
    assert e.update(1_000_000, 0.5) == pytest.approx(875_000, abs=1)  # 1 M x (1 - 0.125)
    assert e.update(1_000_000, 1.0) == pytest.approx(875_000, abs=1)  # no new report: held
    e.loss(1, 64, 1.5)
    assert e.update(875_000, 1.5) == pytest.approx(765_625, abs=1)


def test_low_loss_lets_the_cap_grow_until_it_no_longer_binds() -> None:
    e = DownlinkEstimate()
    e.remb(1_000_000, [1], 0.0)
    e.loss(1, 128, 0.0)  # 50 %: cut to 750 k
    assert e.update(1_000_000, 0.0) == 750_000
    e.loss(1, 0, 0.5)
    estimates = []
    for i in range(1, 9):
        e.remb(1_000_000, [1], i * 0.5)
        estimates.append(e.update(700_000, i * 0.5))
    assert estimates[0] is not None and estimates[0] > 750_000
    assert estimates == sorted(estimates, key=lambda x: x or 0)  # growing ~8 %/s...
    assert estimates[-1] == 1_000_000  # ...until the REMB binds again
    assert e.loss_cap is None


def test_loss_between_two_and_ten_percent_holds() -> None:
    e = DownlinkEstimate()
    e.loss(1, 64, 0.0)
    cut = e.update(1_000_000, 0.0)
    e.loss(1, 12, 1.0)  # ~5 %
    assert e.update(1_000_000, 2.0) == cut


def test_loss_alone_is_a_floor_for_a_client_without_remb() -> None:
    e = DownlinkEstimate()
    e.loss(7, 0, 0.0)
    assert e.update(1_000_000, 0.0) is None  # no loss, no REMB: no limit
    e.loss(7, 100, 1.0)
    assert e.update(1_000_000, 1.0) == 804_687  # 1 M x (1 - 100/512)
    assert e.worst_loss(1.0) == 100


def test_a_remb_that_falls_is_congestion_one_that_grows_is_not() -> None:
    e = DownlinkEstimate()
    # Growing, and a dip of 10 % (noise): no congestion.
    for i, bitrate in enumerate([500_000, 540_000, 580_000, 620_000, 560_000]):
        e.remb(bitrate, [1, 2], i * 0.5)
        assert not e.congested(i * 0.5)
    e.remb(480_000, [1, 2, 3], 2.5)  # below 80 % of 620 k (the SSRC list changed: same source)
    assert e.congested(2.5) and e.congested(3.4)
    assert not e.congested(3.6)
    # Another receiver's REMB (aiortc: per stream) is another source: no fall.
    e.remb(100_000, [7], 3.7)
    assert not e.congested(3.7)


def test_high_loss_is_congestion() -> None:
    e = DownlinkEstimate()
    e.loss(1, 12, 0.0)
    assert not e.congested(0.0)
    e.loss(1, 40, 1.0)
    assert e.congested(1.5)
