"""Hooks: sfu.rtc.sender.keep_track, on a real pair of aiortc peer connections over 127.0.0.1."""

from __future__ import annotations

import pytest

from sfu.media import TestPatternTrack
from sfu.rtc import sender as rtc_sender
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


@pytest.mark.parametrize("keep", [False, True], ids=["aiortc", "kept"])
async def test_a_kept_track_outlives_its_connection(keep: bool) -> None:
    sending, receiving = new_pc(), new_pc()
    track = TestPatternTrack(160, 120)
    transceiver = sending.addTransceiver(track, direction="sendonly")
    if keep:
        rtc_sender.keep_track(transceiver.sender)
    await negotiate(sending, receiving)
    await eventually(lambda: "" if sending.connectionState == "connected" else "connecting")
    await sending.close()
    await receiving.close()
    assert track.readyState == ("live" if keep else "ended")
    if keep:
        await track.recv()  # it can be published again, elsewhere
        track.stop()  # and stopping it is still its owner's to do
        assert track.readyState == "ended"
