"""Checks on a client's SDP before aiortc applies it.

aiortc applies some broken descriptions and only fails later, leaving the connection half
changed (with no rollback to undo it): "v=0" and a line of garbage parse as an offer with no
m-lines, and answering it then crashes. What we refuse here never reaches the connection.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiortc import sdp as aiortc_sdp

from signaling.backend import NegotiationError

MEDIA_KINDS = ("audio", "video", "application")


def check_description(
    text: str, kind: str, negotiated: Sequence[tuple[str | None, str]]
) -> aiortc_sdp.SessionDescription:
    """Parse and check a client offer or answer.

    `negotiated` lists the connection's m-lines so far, in order, as (mid, kind): a new
    description must keep them all, in place (m-lines are never removed, only disabled).
    """
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # the parser raises whatever the bad line makes it raise
        raise NegotiationError("bad_sdp", f"the {kind} is not valid SDP: {exc}") from None
    media = description.media
    if not media:
        raise NegotiationError("bad_sdp", f"the {kind} has no m-lines")
    for i, m in enumerate(media):
        if m.kind not in MEDIA_KINDS:
            raise NegotiationError("bad_sdp", f"m-line {i} has unknown media kind {m.kind!r}")
        if not m.rtp.muxId:
            raise NegotiationError("bad_sdp", f"m-line {i} has no a=mid")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise NegotiationError("bad_sdp", f"m-line {i} has no ICE ufrag/pwd")
        if m.dtls is None or not m.dtls.fingerprints:
            raise NegotiationError("bad_sdp", f"m-line {i} has no DTLS fingerprint")
    if len(media) < len(negotiated):
        raise NegotiationError(
            "bad_sdp",
            f"the {kind} has {len(media)} m-lines; it must keep the {len(negotiated)} "
            "already negotiated",
        )
    for i, (mid, media_kind) in enumerate(negotiated):
        got = (media[i].rtp.muxId, media[i].kind)
        if mid is not None and got != (mid, media_kind):
            raise NegotiationError(
                "bad_sdp", f"m-line {i} is {got}, expected {(mid, media_kind)} as negotiated"
            )
    return description
