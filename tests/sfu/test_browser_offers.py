"""Real browser offers (captured from Chromium 156 and Firefox ESR 153) get a usable answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import sdp as aiortc_sdp

from sfu.backend import SfuBackend
from sfu.config import SfuConfig
from signaling.backend import CandidateInit

FIXTURES = Path(__file__).parent.parent / "fixtures"


class Recorder:
    def __init__(self) -> None:
        self.answers: list[str] = []
        self.offers: list[str] = []
        self.candidates: list[CandidateInit | None] = []
        self.failures: list[str] = []

    def send_offer(self, sdp: str) -> None:
        self.offers.append(sdp)

    def send_answer(self, sdp: str) -> None:
        self.answers.append(sdp)

    def send_candidate(self, candidate: CandidateInit | None) -> None:
        self.candidates.append(candidate)

    def media_failed(self, reason: str) -> None:
        self.failures.append(reason)


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
