"""Checks on a client's SDP before aiortc applies it, and answers with no m-lines.

aiortc applies some broken descriptions and only fails later, leaving the connection half
changed (with no rollback to undo it): its parser skips lines it does not know, so "v=0" and a
line of garbage parse as a description with no m-lines. What we refuse here never reaches the
connection. A well-formed description with no m-lines is valid, though: GStreamer's webrtcbin
offers one as soon as it starts with nothing to send, and it gets an answer with none either.

Each rule on m-lines below stands for a crash found by mutating real browser offers (tests/sfu/
test_sdpcheck.py): two m-lines with one mid bind to one transceiver and setLocalDescription meets
an m-line with no transceiver; an m-line with no direction attribute makes createAnswer look up
`None` in the list of directions; a BUNDLE group naming a mid no m-line has leaves every
transceiver without a transport.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from aiortc import RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from signaling.backend import NegotiationError

MEDIA_KINDS = ("audio", "video", "application")
SENDING = ("sendonly", "sendrecv")
_LINE = re.compile(r"[a-z]=")
_EMPTY_BUNDLE = re.compile(r"^a=group:BUNDLE *\r?\n", re.MULTILINE)


def _check_lines(text: str, kind: str) -> None:
    """RFC 8866's frame: `<type>=<value>` lines, v=0 first, then o=, s= and t= lines."""
    lines = [line for line in text.splitlines() if line]
    if not lines or lines[0] != "v=0":
        raise NegotiationError("bad_sdp", f"the {kind} is not SDP: it does not start with v=0")
    for number, line in enumerate(lines, 1):
        if not _LINE.match(line):
            raise NegotiationError(
                "bad_sdp", f"the {kind} is not valid SDP: line {number} is {line[:40]!r}"
            )
    for field in "ost":
        if not any(line.startswith(f"{field}=") for line in lines):
            raise NegotiationError("bad_sdp", f"the {kind} has no {field}= line")


def check_description(
    text: str,
    kind: str,
    negotiated: Sequence[tuple[str | None, str]],
    *,
    max_tracks: int = 0,
) -> aiortc_sdp.SessionDescription:
    """Parse and check a client offer or answer.

    `negotiated` lists the connection's m-lines so far, in order, as (mid, kind): a new
    description must keep them all, in place (m-lines are never removed, only disabled).
    `max_tracks` (0: any) bounds the tracks the description publishes (`too_many_tracks`);
    -1 allows none (a participant without the `publish` grant: `publish_not_allowed`).
    """
    _check_lines(text, kind)
    try:
        description = aiortc_sdp.SessionDescription.parse(text)
    except Exception as exc:  # the parser raises whatever the bad line makes it raise
        raise NegotiationError("bad_sdp", f"the {kind} is not valid SDP: {exc}") from None
    media = description.media
    mids: set[str] = set()
    for i, m in enumerate(media):
        _check_media(i, m)
        if m.rtp.muxId in mids:
            raise NegotiationError("bad_sdp", f"m-line {i} repeats mid {m.rtp.muxId!r}")
        mids.add(m.rtp.muxId)
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
    _check_bundle(description, mids)
    if max_tracks:
        _check_tracks(kind, media, max_tracks)
    return description


def mlines(description: RTCSessionDescription | None) -> list[tuple[str | None, str]]:
    """(mid, kind) of each m-line of a description of ours, in order (none without one)."""
    if description is None:
        return []
    parsed = aiortc_sdp.SessionDescription.parse(description.sdp)
    return [(m.rtp.muxId, m.kind) for m in parsed.media]


def drop_empty_bundle(sdp: str) -> str:
    """aiortc answers an offer with no m-lines with `a=group:BUNDLE ` (an empty group, and a
    trailing space): leave the group out, as browsers do when there is nothing to bundle."""
    return _EMPTY_BUNDLE.sub("", sdp)


def _check_tracks(kind: str, media: list[aiortc_sdp.MediaDescription], limit: int) -> None:
    # What the client sends: its own m-lines; the server's come back recvonly or inactive.
    sending = sum(m.kind != "application" and m.direction in SENDING for m in media)
    if limit < 0 and sending:
        raise NegotiationError(
            "publish_not_allowed",
            f"the {kind} sends {sending} tracks, and this participant may not publish "
            "(its room token does not grant `publish`): offer them recvonly or inactive",
        )
    if sending > limit >= 0:
        raise NegotiationError(
            "too_many_tracks", f"the {kind} publishes {sending} tracks; at most {limit} are allowed"
        )


def _check_media(i: int, m: aiortc_sdp.MediaDescription) -> None:
    if m.kind not in MEDIA_KINDS:
        raise NegotiationError("bad_sdp", f"m-line {i} has unknown media kind {m.kind!r}")
    if not m.rtp.muxId:
        raise NegotiationError("bad_sdp", f"m-line {i} has no a=mid")
    if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
        raise NegotiationError("bad_sdp", f"m-line {i} has no ICE ufrag/pwd")
    if m.dtls is None or not m.dtls.fingerprints:
        raise NegotiationError("bad_sdp", f"m-line {i} has no DTLS fingerprint")
    if m.kind != "application" and m.direction not in aiortc_sdp.DIRECTIONS:
        raise NegotiationError(
            "bad_sdp", f"m-line {i} has no direction (a=sendrecv, sendonly, recvonly, inactive)"
        )


def _check_bundle(description: aiortc_sdp.SessionDescription, mids: set[str]) -> None:
    for group in description.group:
        unknown = [item for item in group.items if item not in mids]
        if group.semantic == "BUNDLE" and unknown:
            raise NegotiationError(
                "bad_sdp", f"a=group:BUNDLE names mids that no m-line has: {unknown}"
            )


def answer_with_no_m_lines() -> str:
    """An answer to an offer with no m-lines, made without a peer connection (for one that
    crossed our own offer: aiortc's connection cannot answer while its offer is pending)."""
    version = int(time.time())
    return f"v=0\r\no=- {version} {version} IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
