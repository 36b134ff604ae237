"""Hook: sfu.rtc.arrival (the kernel's receive time of each datagram of an aioice connection)."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection

from sfu.media import TestPatternTrack
from sfu.rtc import arrival as rtc_arrival
from sfu.rtc import probe
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")


def hold_the_loop(seconds: float) -> None:
    """Busy, as a loaded server is: nothing else of the event loop runs meanwhile."""
    time.sleep(seconds)


@pytest.fixture
async def connected() -> AsyncIterator[tuple[RTCPeerConnection, Any]]:
    sender, receiver = new_pc(), new_pc()
    sender.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    try:
        await negotiate(sender, receiver)
        (transceiver,) = receiver.getTransceivers()
        conn = probe.ice_connection(transceiver.receiver.transport)
        await eventually(lambda: "" if probe.nominated(conn) else "no pair yet", timeout=10)
        yield receiver, conn
    finally:
        await sender.close()
        await receiver.close()


async def test_datagrams_carry_the_time_the_kernel_got_them(
    connected: tuple[RTCPeerConnection, Any],
) -> None:
    _, conn = connected
    assert rtc_arrival.stamp_arrivals(conn) >= 1
    assert rtc_arrival.stamp_arrivals(conn) == 0  # idempotent
    seen: list[tuple[bytes, float, float]] = []  # (datagram, stamp, when handled)
    handle = conn.data_received

    def spy(data: bytes, component: int) -> None:
        seen.append((data, rtc_arrival.arrival(), time.monotonic()))
        handle(data, component)

    conn.data_received = spy
    await eventually(lambda: "" if len(seen) > 5 else f"{len(seen)} datagrams", timeout=5)
    # A datagram that comes (from another thread) while the loop is held: its stamp is the
    # kernel's, earlier than its handling by about as long as the loop was still held.
    marker = b"\x00aiosfu-arrival"
    address = probe.nominated_address(conn)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:

        def send_later() -> None:
            time.sleep(0.05)
            sock.sendto(marker, address)

        thread = threading.Thread(target=send_later)
        thread.start()
        hold_the_loop(0.25)
        thread.join()
        await eventually(lambda: "" if any(s[0] == marker for s in seen) else "not yet", 5)
    (_, stamp, handled), *_ = [s for s in seen if s[0] == marker]
    assert 0.1 < handled - stamp < 5, (stamp, handled)
    assert all(stamp <= handled for _, stamp, handled in seen)
    conn.data_received = handle
    # Outside a datagram's handling: now.
    assert abs(rtc_arrival.arrival() - time.monotonic()) < 0.01
