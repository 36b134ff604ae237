"""Re-offers that keep what the bundle negotiated.

aiortc's `createOffer()` resets every transceiver's codecs and header extensions to its own
defaults before describing it, so a re-offer renumbers m-lines that were negotiated with the
remote's numbers (a browser's offer: audio-level=1, abs-send-time=2, mid=4; VP8=96, opus=111),
and numbers new m-lines without looking at the rest of the bundle. Chromium refuses both: "RTP
extension ID reassignment not supported" and "A BUNDLE group contains a codec collision".

`create_offer(pc)` snapshots each negotiated transceiver's codecs and extensions, and the
bundle-wide maps (extension URI -> id, codec -> payload type); our wrapper around aiortc's
`create_media_description_for_transceiver` (the function createOffer calls per m-line, after
its reset) then puts the negotiated values back, and numbers new m-lines from the maps: a URI or
codec the bundle already has keeps its number; a new codec keeps aiortc's number when it is
free, or gets the lowest free one; a new extension URI gets its number in `CROSSING_SAFE_IDS`
when free, else aiortc's when free, else the lowest free one. Outside `create_offer` (aiortc's
own answers) the wrapper does nothing.

Why not aiortc's numbers for new URIs (mid=1, abs-send-time=3, audio-level=2): glare. Chromium
keeps the ids of an offer it rolled back for that offer's mids, and refuses a server offer that
gives one of those ids to another URI on the same mid ("RTP extension ID reassignment not
supported (collision on active MID 1, id=3 ...)"). A page whose connection carries only data
channels offers its microphone on mid 1 (audio-level=1, abs-send-time=2, transport-cc=3,
mid=4) as we offer a bot's camera on mid 1 (aiortc: abs-send-time=3): the page's session fails.
Chromium 156 numbers the URIs its page offers (web/sfu-client.js offers only ours) so: audio
and audio with video audio-level=1, abs-send-time=2, transport-cc=3, mid=4; video alone
abs-send-time=2, transport-cc=4, mid=9; RIDs 10 and 11 (older Chromium: the first set). Our
numbers give each URI Chromium's own, and mid one that Chromium gives no other URI in any of
them (tests/browser/test_glare.py crosses each kind of first media offer with ours).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import aiortc.rtcpeerconnection as _rpc
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

_NEGOTIATED = "_aiosfu_negotiated"
_BUNDLE = "_aiosfu_bundle"
_DYNAMIC_PAYLOAD_TYPES = (*range(96, 128), *range(35, 64))  # RFC 5761's safe dynamic ranges
_EXTENSION_IDS = range(1, 15)  # one-byte header extensions
CROSSING_SAFE_IDS: dict[str, int] = {  # see the module doc
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1,
    "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 2,
    "urn:ietf:params:rtp-hdrext:sdes:mid": 9,
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id": 10,
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id": 11,
}

CodecKey = tuple[Any, ...]


def _codec_key(
    codec: RTCRtpCodecParameters, by_pt: dict[int | None, RTCRtpCodecParameters]
) -> CodecKey:
    if is_rtx(codec):
        base = by_pt.get(codec.parameters.get("apt"))  # type: ignore[arg-type]
        return ("rtx", _codec_key(base, by_pt) if base is not None else None)
    fmtp = tuple(
        sorted(
            (k, str(v))
            for k, v in codec.parameters.items()
            if k in ("packetization-mode", "profile-level-id")
        )
    )
    return (codec.mimeType.lower(), codec.clockRate, codec.channels, fmtp)


class BundleNumbers:
    """Which header-extension ids and payload types the bundle uses, and for what."""

    def __init__(self) -> None:
        self.extension_ids: dict[str, int] = {}
        self.payload_types: dict[CodecKey, int] = {}

    def learn(
        self,
        codecs: Iterable[RTCRtpCodecParameters],
        extensions: Iterable[RTCRtpHeaderExtensionParameters],
    ) -> None:
        codecs = list(codecs)
        by_pt = {c.payloadType: c for c in codecs}
        for codec in codecs:
            if codec.payloadType is not None:
                self.payload_types.setdefault(_codec_key(codec, by_pt), codec.payloadType)
        for ext in extensions:
            self.extension_ids.setdefault(ext.uri, ext.id)

    def number_extensions(
        self, extensions: list[RTCRtpHeaderExtensionParameters]
    ) -> list[RTCRtpHeaderExtensionParameters]:
        numbered = []
        for ext in extensions:
            ext_id = self.extension_ids.get(ext.uri)
            if ext_id is None:
                used = set(self.extension_ids.values())
                wanted = (CROSSING_SAFE_IDS.get(ext.uri), ext.id)
                ext_id = next((i for i in wanted if i is not None and i not in used), None)
                if ext_id is None:
                    ext_id = _first_free(_EXTENSION_IDS, used)
                self.extension_ids[ext.uri] = ext_id
            numbered.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=ext.uri))
        return numbered

    def number_codecs(self, codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        by_pt = {c.payloadType: c for c in codecs}
        renumbered: dict[int | None, int] = {}
        # Base codecs first: an RTX entry's apt must name the base codec's new number.
        for codec in sorted(codecs, key=is_rtx):
            key = _codec_key(codec, by_pt)
            pt = self.payload_types.get(key)
            if pt is None:
                used = set(self.payload_types.values())
                pt = codec.payloadType
                if pt is None or pt in used:
                    pt = _first_free(_DYNAMIC_PAYLOAD_TYPES, used)
                self.payload_types[key] = pt
            renumbered[codec.payloadType] = pt
        numbered = []
        for codec in codecs:
            parameters = dict(codec.parameters)
            if is_rtx(codec):
                parameters["apt"] = renumbered[parameters.get("apt")]  # type: ignore[index]
            numbered.append(
                RTCRtpCodecParameters(
                    mimeType=codec.mimeType,
                    clockRate=codec.clockRate,
                    channels=codec.channels,
                    payloadType=renumbered[codec.payloadType],
                    rtcpFeedback=list(codec.rtcpFeedback),
                    parameters=parameters,
                )
            )
        return numbered


def _first_free(candidates: Iterable[int], used: set[int]) -> int:
    for value in candidates:
        if value not in used:
            return value
    raise ValueError("the bundle has no free number left")


def _describe(original: Callable[..., Any]) -> Callable[..., Any]:
    def describe(transceiver: RTCRtpTransceiver, cname: str, direction: str, mid: str) -> Any:
        negotiated = getattr(transceiver, _NEGOTIATED, None)
        bundle: BundleNumbers | None = getattr(transceiver, _BUNDLE, None)
        if negotiated is not None:
            transceiver._codecs, transceiver._headerExtensions = (
                list(negotiated[0]),
                list(negotiated[1]),
            )
        elif bundle is not None:
            transceiver._codecs = bundle.number_codecs(transceiver._codecs)
            transceiver._headerExtensions = bundle.number_extensions(transceiver._headerExtensions)
        return original(transceiver, cname=cname, direction=direction, mid=mid)

    return describe


_rpc.create_media_description_for_transceiver = _describe(
    _rpc.create_media_description_for_transceiver
)


async def create_offer(pc: RTCPeerConnection) -> RTCSessionDescription:
    """`pc.createOffer()`, keeping the numbers the bundle negotiated (see the module doc)."""
    transceivers = pc.getTransceivers()
    bundle = BundleNumbers()
    for t in transceivers:
        if t.mid is not None and t._codecs:
            setattr(t, _NEGOTIATED, (list(t._codecs), list(t._headerExtensions)))
            bundle.learn(t._codecs, t._headerExtensions)
    for t in transceivers:
        setattr(t, _BUNDLE, bundle)
    try:
        offer: RTCSessionDescription = await pc.createOffer()
        return offer
    finally:
        for t in transceivers:
            for attr in (_NEGOTIATED, _BUNDLE):
                if hasattr(t, attr):
                    delattr(t, attr)
