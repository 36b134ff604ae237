"""Hook: sfu.rtc.candidates reads the selected pair's candidate types and addresses from aioice."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import AudioStreamTrack

from sfu.rtc.candidates import PairTypes, selected_pair_addresses, selected_pair_types
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


async def test_a_loopback_connection_selects_a_host_pair() -> None:
    offerer, answerer = new_pc(), new_pc()
    try:
        offerer.addTrack(AudioStreamTrack())
        assert selected_pair_types(offerer) is None, "no ICE transport yet"
        await negotiate(offerer, answerer)

        def connected() -> str:
            states = (offerer.iceConnectionState, answerer.iceConnectionState)
            return "" if states == ("completed", "completed") else f"ICE states {states}"

        await eventually(connected, timeout=10)
        assert selected_pair_types(offerer) == PairTypes("host", "host")
        assert selected_pair_types(answerer) == PairTypes("host", "host")
        mine, theirs = selected_pair_addresses(offerer), selected_pair_addresses(answerer)
        assert mine is not None and theirs is not None
        assert (mine.local, mine.remote) == (theirs.remote, theirs.local)
        assert mine.local[0] == "127.0.0.1" and mine.local[1] > 0
    finally:
        await asyncio.gather(offerer.close(), answerer.close())
    assert selected_pair_types(offerer) is None, "aioice forgets the pair on close"
    assert selected_pair_addresses(offerer) is None
