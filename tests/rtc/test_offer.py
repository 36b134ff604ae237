"""Hook: sfu.rtc.offer numbers new m-lines from the bundle and keeps negotiated ones."""

from __future__ import annotations

from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters

from sfu.rtc import simulcast
from sfu.rtc.fastpath import IdleTrack
from sfu.rtc.offer import BundleNumbers, create_offer
from tests.rtc.pair import negotiate, new_pc

MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RID, RRID = simulcast.RID_URIS


def codec(mime: str, pt: int, clock: int = 90000, **parameters: int) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType=mime, clockRate=clock, payloadType=pt, parameters=dict(parameters)
    )


def test_a_known_codec_or_uri_keeps_the_bundle_number() -> None:
    bundle = BundleNumbers()
    # What a browser negotiated: VP8=96 (rtx 97), mid=4, abs-send-time=2.
    bundle.learn(
        [codec("video/VP8", 96), codec("video/rtx", 97, apt=96)],
        [RTCRtpHeaderExtensionParameters(id=4, uri=MID), RTCRtpHeaderExtensionParameters(2, ABS)],
    )
    # aiortc's defaults for a new m-line: VP8=97, rtx=98, mid=1, abs-send-time=2...
    codecs = bundle.number_codecs([codec("video/VP8", 97), codec("video/rtx", 98, apt=97)])
    assert [(c.mimeType, c.payloadType, c.parameters) for c in codecs] == [
        ("video/VP8", 96, {}),
        ("video/rtx", 97, {"apt": 96}),
    ]
    extensions = bundle.number_extensions(
        [RTCRtpHeaderExtensionParameters(id=1, uri=MID), RTCRtpHeaderExtensionParameters(3, LEVEL)]
    )
    # audio-level is new to the bundle: its crossing-safe number, 1, is free.
    assert [(e.id, e.uri) for e in extensions] == [(4, MID), (1, LEVEL)]


def test_a_new_codec_or_uri_avoids_numbers_in_use() -> None:
    bundle = BundleNumbers()
    bundle.learn(
        [codec("audio/opus", 96, clock=48000)],
        [RTCRtpHeaderExtensionParameters(id=1, uri=LEVEL), RTCRtpHeaderExtensionParameters(9, ABS)],
    )
    (vp8,) = bundle.number_codecs([codec("video/VP8", 96)])
    assert vp8.payloadType == 97  # 96 is opus in this bundle
    # mid's crossing-safe 9 and aiortc's 1 are both taken: the lowest free one.
    (mid,) = bundle.number_extensions([RTCRtpHeaderExtensionParameters(id=1, uri=MID)])
    assert mid.id == 2


async def test_a_reoffer_keeps_the_numbers_the_answer_gave() -> None:
    server, client = new_pc(), new_pc()
    client.addTransceiver("video", direction="sendonly")
    try:
        await negotiate(client, server)  # the client's numbers win: aiortc answers with them
        first = {
            m.rtp.muxId: m
            for m in aiortc_sdp.SessionDescription.parse(server.localDescription.sdp).media
        }
        server.addTransceiver(IdleTrack("audio", on_start=lambda: None), direction="sendonly")
        offer = aiortc_sdp.SessionDescription.parse((await create_offer(server)).sdp)
        video, audio = offer.media
        assert [c.payloadType for c in video.rtp.codecs] == [
            c.payloadType for c in first[video.rtp.muxId].rtp.codecs
        ]
        ids = {e.uri: e.id for e in video.rtp.headerExtensions}
        for ext in audio.rtp.headerExtensions:
            assert ids.get(ext.uri, ext.id) == ext.id
            assert ext.id not in {i for u, i in ids.items() if u != ext.uri}
        video_pts = {c.payloadType for c in video.rtp.codecs}
        assert not video_pts & {c.payloadType for c in audio.rtp.codecs}
    finally:
        await server.close()
        await client.close()


async def test_a_first_offer_numbers_no_extension_as_chromium_numbers_another() -> None:
    """Chromium keeps the ids of an offer it rolled back in glare for its mids: ours must not
    give one of them to another URI (sfu.rtc.offer's module doc has the numberings seen)."""
    chromium = [  # the page's first media offers (web/sfu-client.js offers only our URIs)
        {LEVEL: 1, ABS: 2, TCC: 3, MID: 4, RID: 10, RRID: 11},  # audio, or audio and video
        {ABS: 2, TCC: 4, MID: 9, RID: 10, RRID: 11},  # video alone (Chromium 156)
    ]
    simulcast.install()
    server = new_pc()
    server.addTransceiver(IdleTrack("video", on_start=lambda: None), direction="sendonly")
    server.addTransceiver(IdleTrack("audio", on_start=lambda: None), direction="sendonly")
    try:
        offer = aiortc_sdp.SessionDescription.parse((await create_offer(server)).sdp)
        for media in offer.media:
            for ext in media.rtp.headerExtensions:
                for ids in chromium:
                    others = [uri for uri, i in ids.items() if i == ext.id and uri != ext.uri]
                    assert not others, f"{media.kind}: {ext.uri} at {ext.id}, Chromium's {others}"
    finally:
        await server.close()
