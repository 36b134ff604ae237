"""An imitation of `setLocalDescription({type: "rollback"})`, which aiortc lacks.

The Python client is polite: when the server's offer crosses its own, the server ignores the
client's offer, so the client must drop it, answer the server, then offer again. Browsers roll
back; aiortc cannot. We undo what `createOffer` + `setLocalDescription(offer)` did for the
transceivers that only that offer introduced: they are removed from the connection (the caller
adds fresh ones for the same tracks afterwards), along with an ICE/DTLS transport that nothing
else uses, and the signaling state goes back to "stable". Removing them rather than clearing
their mids matters: aiortc binds an incoming m-line to any same-kind transceiver without a mid,
and would put the server's forwarded track on our publishing transceiver.

Only offers that add transceivers (and the data channels' m-line, the first time) and change
nothing else can be rolled back this way, which is all the Python client ever offers.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection, RTCRtpTransceiver


def _pc(pc: RTCPeerConnection, name: str) -> Any:
    return getattr(pc, f"_RTCPeerConnection__{name}")


def ice_role_set(pc: RTCPeerConnection) -> bool:
    """Whether the ICE role is settled (snapshot this before the offer you may roll back)."""
    return any(t._role_set for t in _pc(pc, "iceTransports"))


async def rollback_offer(
    pc: RTCPeerConnection,
    added: list[RTCRtpTransceiver],
    *,
    ice_role_was_set: bool,
    data_channels: bool = False,
) -> None:
    """`data_channels`: the offer brought the data channels' m-line, which goes too (the
    channels stay, to be offered again)."""
    if pc.signalingState != "have-local-offer":
        raise RuntimeError(f"nothing to roll back in signaling state {pc.signalingState}")
    transceivers: list[RTCRtpTransceiver] = _pc(pc, "transceivers")
    for transceiver in added:
        if transceiver in transceivers:
            transceivers.remove(transceiver)
        await transceiver.stop()

    sctp = _pc(pc, "sctp")
    if data_channels and sctp is not None:
        # setLocalDescription(offer) gave it the offer's mid: without one, the next offer
        # describes it as a new m-line, and the server's offer (which has none) leaves it be.
        sctp.mid = None
        pc._RTCPeerConnection__sctp_mline_index = None  # type: ignore[attr-defined]
    still_used = {t.receiver.transport for t in transceivers}
    if sctp is not None:
        still_used.add(sctp.transport)
    dtls_transports: set[Any] = _pc(pc, "dtlsTransports")
    ice_transports: set[Any] = _pc(pc, "iceTransports")
    for dtls in list(dtls_transports):
        if dtls not in still_used:
            dtls_transports.discard(dtls)
            ice_transports.discard(dtls.transport)
            await dtls.stop()
            await dtls.transport.stop()

    if not ice_role_was_set:
        # setLocalDescription(offer) made us controlling; the server's offer must decide again.
        for ice in ice_transports:
            ice._role_set = False
    pc._RTCPeerConnection__setSignalingState("stable")  # type: ignore[attr-defined]
    pc._RTCPeerConnection__pendingLocalDescription = None  # type: ignore[attr-defined]
