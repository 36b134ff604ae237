"""A server re-offer to a browser must keep what the bundle negotiated: each RTP header-extension
id and each payload type means one thing across all m-lines, and an m-line keeps its ids.

Chromium refuses anything else: "RTP extension ID reassignment not supported (collision on active
MID 0, id=1, old_uri=...ssrc-audio-level, new_uri=...sdes:mid)", and "A BUNDLE group contains a
codec collision". aiortc's createOffer() resets every transceiver's header extensions and codecs
to its own defaults (mid=1, audio-level=2, abs-send-time=3; opus=96, VP8=97...), while Chromium's
first offer numbers them its own way (audio-level=1, abs-send-time=2, mid=4; VP8=96, opus=111).
So a page that publishes before the server first offers to it (anyone alone in a room, say)
cannot receive anyone who joins later. tests/browser/ shows it end to end. sfu/rtc/offer.py keeps
the numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc import sdp as aiortc_sdp

from sfu.backend import SfuBackend
from sfu.config import SfuConfig
from sfu.media import TestPatternTrack
from sfu.peerconfig import rtc_configuration
from tests.sfu.test_browser_offers import Recorder
from tests.util import eventually

FIXTURES = Path(__file__).parent.parent / "fixtures"


def _extensions(media: aiortc_sdp.MediaDescription) -> dict[int, str]:
    return {e.id: e.uri for e in media.rtp.headerExtensions}


def _conflicts(description: aiortc_sdp.SessionDescription) -> Iterator[str]:
    ids: dict[int, tuple[str, str]] = {}
    payload_types: dict[int, tuple[str, str]] = {}
    for media in description.media:
        mid = media.rtp.muxId
        for ext_id, uri in _extensions(media).items():
            seen = ids.setdefault(ext_id, (uri, mid))
            if seen[0] != uri:
                yield f"extension id {ext_id}: {seen[0]} on mid {seen[1]}, {uri} on {mid}"
        for codec in media.rtp.codecs:
            name = f"{codec.mimeType}/{codec.clockRate}"
            pt = codec.payloadType
            assert pt is not None
            seen = payload_types.setdefault(pt, (name, mid))
            if seen[0] != name:
                yield f"payload type {pt}: {seen[0]} on mid {seen[1]}, {name} on {mid}"


async def test_reoffer_to_a_browser_publisher_keeps_the_bundle_ids() -> None:
    backend = SfuBackend(SfuConfig(ice_addresses=["127.0.0.1"]))
    browser_signals, bot_signals = Recorder(), Recorder()
    browser = await backend.join("bundle", "browser", browser_signals)
    bot_pc = RTCPeerConnection(rtc_configuration([]))
    try:
        # The browser publishes first: its own offer sets the bundle's ids.
        await browser.offer((FIXTURES / "chrome_plain_offer.sdp").read_text())
        (answer,) = browser_signals.answers
        negotiated = {
            m.rtp.muxId: _extensions(m) for m in aiortc_sdp.SessionDescription.parse(answer).media
        }

        # A bot joins (and takes the browser's tracks), then publishes: the server offers the
        # bot's track to the browser.
        bot = await backend.join("bundle", "bot", bot_signals)
        await eventually(lambda: "" if bot_signals.offers else "no offer to the bot")
        await bot_pc.setRemoteDescription(
            RTCSessionDescription(sdp=bot_signals.offers[0], type="offer")
        )
        await bot_pc.setLocalDescription(await bot_pc.createAnswer())
        await bot.answer(bot_pc.localDescription.sdp)
        bot_pc.addTransceiver(TestPatternTrack(320, 240), direction="sendonly")
        await bot_pc.setLocalDescription(await bot_pc.createOffer())
        await bot.offer(bot_pc.localDescription.sdp)
        await eventually(lambda: "" if browser_signals.offers else "no re-offer to the browser")

        reoffer = aiortc_sdp.SessionDescription.parse(browser_signals.offers[0])
        problems = list(_conflicts(reoffer))
        for media in reoffer.media:
            before = negotiated.get(media.rtp.muxId)
            if before is not None and _extensions(media) != before:
                problems.append(
                    f"mid {media.rtp.muxId} extensions were {before}, re-offered as "
                    f"{_extensions(media)}"
                )
        assert not problems, problems
    finally:
        await bot_pc.close()
        await backend.close()
