"""Hook: sfu.rtc.liveness reads aiortc's count of datagrams its DTLS transport received."""

from __future__ import annotations

from aiortc import MediaStreamTrack

from sfu.media import TestPatternTrack
from sfu.rtc import liveness
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually, recv


async def test_the_count_grows_with_what_arrives_and_matches_get_stats() -> None:
    a, b = new_pc(), new_pc()
    assert liveness.datagrams_received(b) == 0  # no transport yet
    a.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
    tracks: list[MediaStreamTrack] = []
    b.on("track", tracks.append)
    try:
        await negotiate(a, b)
        await eventually(lambda: "" if tracks else "no track", 10)
        await recv(tracks[0])
        before = liveness.datagrams_received(b)
        assert before > 0
        for _ in range(3):
            await recv(tracks[0])
        now = liveness.datagrams_received(b)
        assert now > before
        stats = [s for s in (await b.getStats()).values() if s.type == "transport"]
        assert stats and stats[0].packetsReceived >= now
        assert liveness.datagrams_received(a) > 0  # the receiver's RTCP, the DTLS handshake
    finally:
        await a.close()
        await b.close()
