"""Hook: the kernel's receive time of each datagram of an ICE connection (SO_TIMESTAMPNS).

Transport-cc feedback tells a publisher when each of its packets arrived, and its estimator
(libwebrtc's GoogCC), its first bandwidth probes above all, reads the spread of those times. The
event loop reads a datagram late by whatever it was busy with: measured here on a loaded machine,
1.5 ms at p90 and 12 ms at p99 after the kernel had it, enough to make a 15 ms probe look slow
and leave Chromium ramping up for 10-20 s instead of one (about one publish in six). With
SO_TIMESTAMPNS the kernel stamps each datagram as it comes in, and the read takes recvmsg
instead of recvfrom.

`stamp_arrivals(conn)` switches the plain UDP sockets of an aioice connection (not TURN
relays) to that read: their transport's reader, registered with the event loop when asyncio
made it, is replaced by one that reads the stamp (asyncio's private selector API:
`_remove_reader` / `_add_reader`). While the datagram is handled, `arrival()` gives its
stamp on the time.monotonic() scale; elsewhere, time.monotonic() itself. Linux only (elsewhere
a no-op).
"""

from __future__ import annotations

import socket
import struct
import sys
from asyncio import selector_events
from collections.abc import Callable
from time import monotonic as _monotonic
from time import time as _time
from typing import Any

SO_TIMESTAMPNS = 35  # Linux; the control message it brings has the same type (SCM_TIMESTAMPNS)
_TIMESPEC_STRUCT = struct.Struct("@qq")  # struct timespec: seconds, nanoseconds (64-bit Linux)
_TIMESPEC = _TIMESPEC_STRUCT.unpack_from
_CONTROL = socket.CMSG_SPACE(_TIMESPEC_STRUCT.size)
_STAMPED = "_aiosfu_stamped"
_DATAGRAM: Any = getattr(selector_events, "_SelectorDatagramTransport", None)  # private
_now = [0.0]  # the stamp of the datagram being handled (0.0: none)


def arrival() -> float:
    """When the datagram being handled reached the kernel (time.monotonic() scale)."""
    return _now[0] or _monotonic()


def stamp_arrivals(conn: Any) -> int:
    """Read the kernel's stamp with each datagram of `conn`'s plain UDP sockets (idempotent);
    returns how many sockets were switched now."""
    if sys.platform != "linux" or conn is None:
        return 0
    switched = 0
    for protocol in getattr(conn, "_protocols", ()):
        transport: Any = getattr(protocol, "transport", None)
        if type(transport) is not _DATAGRAM or getattr(transport, _STAMPED, False):
            continue
        if transport.is_closing():
            continue
        transport._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        loop: Any = transport._loop
        loop._remove_reader(transport._sock_fd)
        loop._add_reader(transport._sock_fd, _reader(transport))
        setattr(transport, _STAMPED, True)
        switched += 1
    return switched


def _reader(transport: Any) -> Callable[[], None]:
    sock, size = transport._sock, transport.max_size

    def read_ready() -> None:
        # asyncio's _SelectorDatagramTransport._read_ready, with recvmsg for the stamp.
        if transport._conn_lost:
            return
        try:
            data, control, _flags, addr = sock.recvmsg(size, _CONTROL)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            transport._protocol.error_received(exc)
            return
        stamp = 0.0
        for level, kind, value in control:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = _TIMESPEC(value)
                stamp = _monotonic() - (_time() - (seconds + nanoseconds * 1e-9))
        _now[0] = stamp
        try:
            transport._protocol.datagram_received(data, addr)
        finally:
            _now[0] = 0.0

    return read_ready
