"""Real browser offers (captured from Chromium 156 and Firefox ESR 153) get a usable answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import sdp as aiortc_sdp

from sfu.backend import SfuBackend
from sfu.config import SfuConfig
from signaling.backend import CandidateInit, IceServer, RoomEvent

FIXTURES = Path(__file__).parent.parent / "fixtures"


class Recorder:
    def __init__(self) -> None:
        self.answers: list[str] = []
        self.offers: list[str] = []
        self.candidates: list[CandidateInit | None] = []
        self.failures: list[str] = []
        self.rebuilds: list[str] = []
        self.layers: list[tuple[str, str, str]] = []
        self.events: list[RoomEvent] = []
        self.published_layers: list[tuple[str, list[str]]] = []

    def send_offer(self, sdp: str) -> None:
        self.offers.append(sdp)

    def send_answer(self, sdp: str) -> None:
        self.answers.append(sdp)

    def send_candidate(self, candidate: CandidateInit | None) -> None:
        self.candidates.append(candidate)

    def media_failed(self, reason: str) -> None:
        self.failures.append(reason)

    def rebuild(self, reason: str, ice_servers: list[IceServer]) -> None:
        self.rebuilds.append(reason)

    def layer_changed(self, track: str, layer: str, requested: str) -> None:
        self.layers.append((track, layer, requested))

    def event(self, event: RoomEvent) -> None:
        self.events.append(event)

    def publish_layers(self, track: str, layers: list[str]) -> None:
        self.published_layers.append((track, layers))


@pytest.mark.parametrize("browser", ["chrome", "firefox"])
async def test_plain_browser_offer_is_answered(browser: str) -> None:
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    signals = Recorder()
    peer = await backend.join("browsers", "p1", signals)
    try:
        await peer.offer((FIXTURES / f"{browser}_plain_offer.sdp").read_text())
        (answer,) = signals.answers
        assert signals.candidates == [None]  # end-of-candidates follows every answer
        description = aiortc_sdp.SessionDescription.parse(answer)
        assert [(m.kind, m.direction) for m in description.media] == [
            ("audio", "recvonly"),
            ("video", "recvonly"),
        ]
        assert description.group[0].semantic == "BUNDLE"
        video = description.media[1]
        assert "VP8" in [c.name for c in video.rtp.codecs]
        assert any(c.ip == "127.0.0.1" for c in description.media[0].ice_candidates)
        (participant,) = backend.participants()
        assert sorted(p.kind for p in participant.publications.values()) == ["audio", "video"]
    finally:
        await peer.close()
    assert backend.rooms == {}


async def test_firefox_candidates_the_server_cannot_use_are_taken_quietly() -> None:
    """Firefox trickles RTCP (component 2), TCP and ::1 candidates, and one end-of-candidates
    per m-line: each is accepted (aioice pairs only UDP, component 1, same address family)."""
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    signals = Recorder()
    peer = await backend.join("browsers", "p1", signals)
    try:
        # As a live Firefox offers it: its candidates trickle after the offer.
        offer = (FIXTURES / "firefox_plain_offer.sdp").read_text()
        await peer.offer(offer.replace("a=end-of-candidates\n", ""))
        trickled = [
            "candidate:0 1 UDP 2122187007 127.0.0.1 50001 typ host",
            "candidate:1 1 UDP 2122252543 ::1 50002 typ host",
            "candidate:2 1 TCP 2105458943 127.0.0.1 9 typ host tcptype active",
            "candidate:0 2 UDP 2122187006 127.0.0.1 50003 typ host",
        ]
        for mid, line in enumerate(trickled):
            await peer.candidate(CandidateInit(line, sdp_mid=str(mid % 2), sdp_mline_index=mid % 2))
        await peer.candidate(None)
        await peer.candidate(None)  # the second m-line's
        (participant,) = backend.participants()
        ice = participant.pc.getTransceivers()[0].receiver.transport.transport
        remote = {(c.protocol.lower(), c.ip, c.component) for c in ice.getRemoteCandidates()}
        assert {
            ("udp", "127.0.0.1", 1),
            ("udp", "::1", 1),
            ("tcp", "127.0.0.1", 1),
            ("udp", "127.0.0.1", 2),
        } <= remote
        assert signals.failures == []
    finally:
        await peer.close()


@pytest.mark.parametrize("browser", ["chrome", "firefox"])
async def test_simulcast_offer_gets_a_simulcast_answer(browser: str) -> None:
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    signals = Recorder()
    peer = await backend.join("browsers", "p1", signals)
    try:
        offer = (FIXTURES / f"{browser}_simulcast_offer.sdp").read_text()
        await peer.offer(offer)
        (answer,) = signals.answers
        audio, video = answer.split("m=video")
        video = "m=video" + video
        lines = video.splitlines()
        # The layers the offer sends (h;m;l), each received, in the offer's order.
        assert [line for line in lines if line.startswith("a=rid:")] == [
            "a=rid:h recv",
            "a=rid:m recv",
            "a=rid:l recv",
        ]
        assert "a=simulcast:recv h;m;l" in lines
        assert "a=rid:" not in audio and "a=simulcast" not in audio
        # The two RID header extensions, under the offer's ids (Firefox offered them sendonly:
        # we receive them).
        ids = {"chrome": (10, 11, ""), "firefox": (9, 10, "/recvonly")}[browser]
        rid, repaired, direction = ids
        assert f"a=extmap:{rid}{direction} urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id" in lines
        assert (
            f"a=extmap:{repaired}{direction} "
            "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id" in lines
        )
        description = aiortc_sdp.SessionDescription.parse(answer)
        assert [(m.kind, m.direction) for m in description.media] == [
            ("audio", "recvonly"),
            ("video", "recvonly"),
        ]
        (participant,) = backend.participants()
        (publication,) = [p for p in participant.publications.values() if p.kind == "video"]
        assert publication.simulcast
        assert [layer.rid for layer in publication.layers] == ["l", "m", "h"]
    finally:
        await peer.close()
    assert backend.rooms == {}


async def test_new_ice_credentials_before_the_connection_came_up_are_answered() -> None:
    """Nothing to restart nor rebuild on a connection that never came up: each offer is
    answered (a rebuild would drop the first offer's credentials, and every later offer
    reusing them would go unanswered)."""
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    signals = Recorder()
    peer = await backend.join("browsers", "p1", signals)
    try:
        offer = (FIXTURES / "chrome_plain_offer.sdp").read_text()
        ufrag = offer.split("a=ice-ufrag:", 1)[1].split()[0]
        for sdp in (offer, offer.replace(ufrag, "zz" + ufrag[2:]), offer):
            await peer.offer(sdp)
        assert len(signals.answers) == 3 and signals.rebuilds == [] and signals.failures == []
    finally:
        await peer.close()
