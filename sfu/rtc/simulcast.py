"""Simulcast receive: what aiortc's negotiation lacks, and which layer an RTP packet belongs to.

A simulcast publisher sends one m-line with three encodings, named by RID (`a=rid:l send`,
`a=rid:m send`, `a=rid:h send`, `a=simulcast:send h;m;l`), each an RTP stream of its own SSRC
(and an RTX SSRC). Chromium's offer has no `a=ssrc` lines: a stream is known only by the
`rtp-stream-id` header extension (RID), its RTX by `repaired-rtp-stream-id`, and Chromium stops
sending them once our receiver reports acknowledge the SSRC. Firefox keeps `a=ssrc` lines (and
FID groups) but names its layers the same way. aiortc 1.16 has no simulcast at all:

- its SDP model has no field for `a=rid` / `a=simulcast`: they are dropped when it parses a
  description and never written. `SimulcastNegotiation` reads them from the client's text
  (`remote()`) and writes our side (`a=rid:<rid> recv`, `a=simulcast:recv ...`) into every
  description the server sends (`describe()`), its answers and its later offers alike: a
  re-offer without them would make the browser fall back to one encoding;
- it negotiates only the header extensions of `aiortc.codecs.HEADER_EXTENSIONS` (video: mid,
  abs-send-time). `install()` adds the two RID extensions to its video list, so every video
  m-line negotiates them, ours included: Chromium refuses to make an offer with a simulcast
  m-line once the bundle it negotiated has no RID extension ("negotiates simulcast but does
  not negotiate the RID RTP header extension"), which a server offer without them leads to.
  aiortc then parses them into `RtpPacket.extensions` (it already knows the URIs). We never
  send them on forwarded streams;
- its RtpRouter latches an unknown SSRC to the *only* receiver with that payload type (else drops
  it) and never reads the MID extension: two video publications of one client without `a=ssrc`
  lines (two simulcast tracks) would lose every packet. `install()` also makes the router try
  the MID extension first (RFC 8843 9.2), on the path only the first packets of an SSRC take.

Layers are named `l`, `m`, `h` (`LAYERS`, lowest first), as the `welcome` says; an offer whose
RIDs are not among them gets a plain (single-stream) answer for that m-line, which makes the
browser send its first encoding only. A paused RID (`~h`) counts as offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import aiortc.rtcdtlstransport as _dtls
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters
from aiortc.rtp import RtpPacket

LAYERS: Final = ("l", "m", "h")  # RIDs, lowest layer first: the index is the layer's rank
RID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
RID_URIS: Final = (RID_URI, REPAIRED_RID_URI)
# Our numbers for them where the bundle has none yet (a bundle that has them keeps its own:
# sfu.rtc.offer): Chromium's. Chromium keeps the numbers of an offer it rolled back (glare) for
# the bundle and refuses a server offer that reuses one for another extension; its own offers
# number these two 10 and 11 (what else it adds takes the lowest numbers free: transport-cc was
# seen at 4 in a bundle where aiortc had taken 1-3).
_RID_IDS: Final = {RID_URI: 10, REPAIRED_RID_URI: 11}

_RID_LINE = re.compile(r"^a=rid:(\S+) (send|recv)\b", re.MULTILINE)
_SIMULCAST_LINE = re.compile(r"^a=simulcast:(.*)$", re.MULTILINE)
_EXTMAP_LINE = re.compile(r"^a=extmap:(\d+)(?:/(\w+))? (\S+)", re.MULTILINE)
_MID_LINE = re.compile(r"^a=mid:(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class SimulcastOffer:
    """What a client's m-line says it sends: its RIDs (in its own order, `a=simulcast`'s) and
    the ids of the RID header extensions, with the direction it gave them (Firefox: sendonly)."""

    rids: tuple[str, ...]
    extensions: tuple[tuple[int, str | None, str], ...]  # (id, direction, uri)

    @property
    def layers(self) -> tuple[str, ...]:
        """Its RIDs, lowest layer first."""
        return tuple(rid for rid in LAYERS if rid in self.rids)


def _sections(sdp: str) -> list[str]:
    """The session part, then each m-section, as they appear (lines keep their CRLF)."""
    return re.split(r"(?m)^(?=m=)", sdp)


def _send_rids(section: str) -> tuple[str, ...]:
    """The RIDs the remote sends on this m-section: in `a=simulcast:send`, and `a=rid ... send`."""
    declared = {rid for rid, direction in _RID_LINE.findall(section) if direction == "send"}
    for line in _SIMULCAST_LINE.findall(section):
        parts = line.split()
        for direction, streams in zip(parts[::2], parts[1::2], strict=False):
            if direction != "send":
                continue
            # `;` separates streams, `,` alternatives of one stream; `~` marks a paused one.
            rids = [alt.lstrip("~") for stream in streams.split(";") for alt in stream.split(",")]
            return tuple(rid for rid in rids if rid in declared)
    return ()


def offered(sdp: str) -> dict[str, SimulcastOffer]:
    """The video m-lines of a client description that send simulcast we can receive, by mid."""
    found: dict[str, SimulcastOffer] = {}
    for section in _sections(sdp)[1:]:
        mid = _MID_LINE.search(section)
        if not section.startswith("m=video") or mid is None:
            continue
        rids = _send_rids(section)
        if len(rids) < 2 or not set(rids) <= set(LAYERS):
            continue
        extensions = tuple(
            (int(ext_id), direction or None, uri)
            for ext_id, direction, uri in _EXTMAP_LINE.findall(section)
            if uri in RID_URIS
        )
        if RID_URI not in {uri for _, _, uri in extensions}:
            continue  # no way to tell the layers apart
        found[mid.group(1)] = SimulcastOffer(rids, extensions)
    return found


def describe(sdp: str, simulcast: dict[str, SimulcastOffer]) -> str:
    """Our description (offer or answer) with simulcast receive lines on these m-lines."""
    if not simulcast:
        return sdp
    sections = _sections(sdp)
    for i, section in enumerate(sections[1:], start=1):
        mid = _MID_LINE.search(section)
        offer = simulcast.get(mid.group(1)) if mid is not None else None
        if offer is None or not section.startswith("m=video"):
            continue
        # A direction the client gave a RID extension is mirrored (sendonly -> recvonly).
        for ext_id, direction, uri in offer.extensions:
            if direction == "sendonly":
                section = section.replace(
                    f"a=extmap:{ext_id} {uri}", f"a=extmap:{ext_id}/recvonly {uri}"
                )
        eol = "\r\n" if section.endswith("\r\n") else "\n"
        lines = [f"a=rid:{rid} recv" for rid in offer.rids]
        lines.append("a=simulcast:recv " + ";".join(offer.rids))
        sections[i] = section + eol.join(lines) + eol
    return "".join(sections)


class SimulcastNegotiation:
    """One peer connection's simulcast m-lines, kept across renegotiations (see the module doc)."""

    def __init__(self) -> None:
        self.by_mid: dict[str, SimulcastOffer] = {}

    def remote(self, sdp: str, kind: str) -> None:
        """A client description: learn the simulcast m-lines a client offer sends."""
        if kind != "offer":
            return
        for mid, offer in offered(sdp).items():
            # A later offer may not drop simulcast from an m-line: the publication that
            # receives it was made with its layers (a plain re-offer keeps the old ones).
            self.by_mid.setdefault(mid, offer)

    def layers(self, mid: str | None) -> tuple[str, ...]:
        """The RIDs an m-line sends, lowest first; () when it is not simulcast."""
        offer = self.by_mid.get(mid or "")
        return offer.layers if offer is not None else ()

    def describe(self, sdp: str) -> str:
        return describe(sdp, self.by_mid)


def packet_rid(packet: RtpPacket) -> tuple[str | None, bool]:
    """(RID, repaired): the layer a packet names, and whether it is a retransmission stream's.

    Both None/False once the publisher stopped sending the extensions (the caller remembers).
    """
    extensions = packet.extensions
    if extensions.repaired_rtp_stream_id:
        return extensions.repaired_rtp_stream_id, True
    return extensions.rtp_stream_id or None, False


def _route_rtp(self: Any, packet: RtpPacket) -> Any:
    receiver = self.ssrc_table.get(packet.ssrc)
    if receiver is None:
        mid = packet.extensions.mid
        by_mid = self.mid_table.get(mid) if mid else None
        if by_mid is not None and by_mid in self.payload_type_table.get(packet.payload_type, ()):
            self.ssrc_table[packet.ssrc] = by_mid
            return by_mid
    return _original_route_rtp(self, packet)


_original_route_rtp = _dtls.RtpRouter.route_rtp


def install() -> None:
    """Negotiate the RID extensions on every video m-line, and make every RtpRouter latch an
    unknown SSRC by its MID extension first (see the module doc). Idempotent."""
    video = HEADER_EXTENSIONS["video"]
    for uri, ext_id in _RID_IDS.items():
        if uri not in {e.uri for e in video}:
            video.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri))
    _dtls.RtpRouter.route_rtp = _route_rtp  # type: ignore[method-assign]
