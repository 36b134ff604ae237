"""Hooks: sfu.rtc.simulcast (RIDs in SDP, the RID extensions negotiated, routing by MID)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiortc import RTCSessionDescription
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from sfu.rtc import fastpath
from sfu.rtc.simulcast import (
    REPAIRED_RID_URI,
    RID_URI,
    SimulcastNegotiation,
    describe,
    install,
    offered,
    packet_rid,
)
from tests.rtc.pair import new_pc

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.sdp").read_text()


def test_offered_layers_of_real_browser_offers() -> None:
    chrome = offered(fixture("chrome_simulcast_offer"))
    assert list(chrome) == ["1"]
    assert chrome["1"].rids == ("h", "m", "l") and chrome["1"].layers == ("l", "m", "h")
    assert chrome["1"].extensions == ((10, None, RID_URI), (11, None, REPAIRED_RID_URI))
    firefox = offered(fixture("firefox_simulcast_offer"))
    assert firefox["1"].extensions == ((9, "sendonly", RID_URI), (10, "sendonly", REPAIRED_RID_URI))
    assert offered(fixture("chrome_plain_offer")) == {}
    assert offered(fixture("firefox_plain_offer")) == {}


def test_rids_we_do_not_know_or_without_their_extension_are_not_simulcast() -> None:
    sdp = fixture("chrome_simulcast_offer")
    other = sdp.replace("a=rid:h send", "a=rid:f send").replace("h;m;l", "f;m;l")
    assert offered(other) == {}
    assert offered(sdp.replace("a=rid:m send\r\n", "").replace("h;m;l", "h;l"))["1"].rids == (
        "h",
        "l",
    )
    assert offered(sdp.replace("h;m;l", "h")) == {}  # one layer is no simulcast
    assert offered(sdp.replace("urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "x")) == {}
    assert offered(sdp.replace("h;m;l", "~h;m;l"))["1"].rids == ("h", "m", "l")  # paused h


def test_describe_adds_receive_lines_to_the_simulcast_m_line_only() -> None:
    offer = offered(fixture("firefox_simulcast_offer"))
    ours = (
        "v=0\r\n"
        + "m=audio 9 x\r\na=mid:0\r\n"
        + ("m=video 9 x\r\na=mid:1\r\na=extmap:9 " + RID_URI + "\r\n")
    )
    described = describe(ours, offer)
    audio, video = described.split("m=video")
    assert "a=rid" not in audio
    assert video.endswith(
        "a=extmap:9/recvonly " + RID_URI + "\r\n"
        "a=rid:h recv\r\na=rid:m recv\r\na=rid:l recv\r\na=simulcast:recv h;m;l\r\n"
    )
    assert describe(ours, {}) == ours


async def test_every_video_m_line_negotiates_the_rid_extensions() -> None:
    install()
    install()  # idempotent
    pc, sender = new_pc(), new_pc()
    negotiation = SimulcastNegotiation()
    try:
        sdp = fixture("chrome_simulcast_offer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        negotiation.remote(sdp, "offer")
        audio, video = pc.getTransceivers()
        rids = (RID_URI, REPAIRED_RID_URI)
        assert [fastpath.negotiated_extension(video, uri) for uri in rids] == [10, 11]
        assert [fastpath.negotiated_extension(audio, uri) for uri in rids] == [None, None]
        assert negotiation.layers("1") == ("l", "m", "h") and negotiation.layers("0") == ()
        await pc.setLocalDescription(await pc.createAnswer())
        answer = negotiation.describe(pc.localDescription.sdp)
        assert f"a=extmap:10 {RID_URI}" in answer and "a=simulcast:recv h;m;l" in answer
        # A later plain offer keeps the layers the first one said.
        negotiation.remote(sdp.replace("a=simulcast:send h;m;l", ""), "offer")
        assert negotiation.layers("1") == ("l", "m", "h")
        # Our own video offers carry them too (a browser then keeps them in the bundle).
        sender.addTransceiver("video", direction="sendonly")
        offer = (await sender.createOffer()).sdp
        assert f"a=extmap:10 {RID_URI}" in offer and f"a=extmap:11 {REPAIRED_RID_URI}" in offer
    finally:
        await pc.close()
        await sender.close()


def test_packet_rid_names_a_layer_and_its_retransmissions() -> None:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=10, uri=RID_URI),
                RTCRtpHeaderExtensionParameters(id=11, uri=REPAIRED_RID_URI),
            ]
        )
    )

    def roundtrip(**values: str) -> RtpPacket:
        packet = RtpPacket(payload_type=97, ssrc=7)
        for name, value in values.items():
            setattr(packet.extensions, name, value)
        return RtpPacket.parse(packet.serialize(extensions), extensions)

    assert packet_rid(roundtrip(rtp_stream_id="h")) == ("h", False)
    assert packet_rid(roundtrip(repaired_rtp_stream_id="l")) == ("l", True)
    assert packet_rid(roundtrip()) == (None, False)  # the publisher stopped naming it


class Receiver:
    """Stands in for an RTCRtpReceiver in the router's tables."""


def test_route_by_mid_tells_two_receivers_of_one_payload_type_apart() -> None:
    router = RtpRouter()
    first: Any = Receiver()
    second: Any = Receiver()
    router.register_receiver(first, ssrcs=[], payload_types=[96], mid="1")
    router.register_receiver(second, ssrcs=[], payload_types=[96], mid="2")
    packet = RtpPacket(payload_type=96, ssrc=1234)
    packet.extensions.mid = "2"
    install()
    assert router.route_rtp(packet) is second
    packet.extensions.mid = None
    assert router.route_rtp(packet) is second  # latched by SSRC now
    unknown = RtpPacket(payload_type=96, ssrc=99)
    assert router.route_rtp(unknown) is None  # no MID, two candidates: aiortc's own rule
