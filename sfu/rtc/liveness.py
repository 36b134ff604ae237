"""How much a peer connection has received: the cheap liveness signal of the Python client's
dead-path watch (sfu.pathwatch).

aiortc never reports `disconnected`, and its consent checks close a dead path only after ~30 s.
Its DTLS transport counts every datagram it reads (DTLS, SRTP and SRTCP; not the STUN that aioice
answers itself) in a private counter, the same one its getStats() reports as the transport's
`packetsReceived`: reading it costs nothing per packet, where getStats() would build a report of
every transceiver. Max-bundle: one DTLS transport carries everything, and an ICE restart in place
(sfu.rtc.icerestart) keeps it, so the count goes on across restarts.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection

from .icerestart import dtls_transport


def datagrams_received(pc: RTCPeerConnection) -> int:
    """Datagrams the connection's DTLS transport has read so far (0 before it has one)."""
    dtls = dtls_transport(pc)
    if dtls is None:
        return 0
    count: int = dtls._RTCDtlsTransport__rx_packets  # type: ignore[attr-defined]
    return count
