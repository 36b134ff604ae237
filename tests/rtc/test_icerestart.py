"""Hooks: sfu.rtc.icerestart, on a real pair of aiortc peer connections over 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from sfu.media import TestPatternTrack
from sfu.rtc import icerestart, probe
from sfu.rtc.candidates import selected_pair_addresses
from sfu.rtc.icerestart import IceRestart, dtls_transport, remote_ufrag
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually, recv


class Call:
    """A sends video to B; each side has its IceRestart."""

    def __init__(self) -> None:
        self.a, self.b = new_pc(), new_pc()
        self.a.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
        self.tracks: list[MediaStreamTrack] = []
        self.b.on("track", self.tracks.append)
        self.done: dict[str, list[bool]] = {"a": [], "b": []}
        self.switched = {"a": 0, "b": 0}
        self.ra = self._restart(self.a, "a")
        self.rb = self._restart(self.b, "b")

    def _restart(self, pc: RTCPeerConnection, side: str) -> IceRestart:
        def switched() -> None:
            self.switched[side] += 1

        return IceRestart(pc, switched, lambda ok, seconds: self.done[side].append(ok))

    async def start(self) -> None:
        await negotiate(self.a, self.b)
        await eventually(lambda: "" if self.tracks else "no track", 10)
        await recv(self.tracks[0])

    async def restart(self, answerer_restarts: bool = True, trickle: bool = False) -> None:
        """A restarts ICE: offers new credentials; B answers (restarting too, in place)."""
        assert await self.ra.begin()
        await self.a.setLocalDescription(await self.a.createOffer())
        offer = self.a.localDescription.sdp
        assert self.rb.is_restart(offer)
        if answerer_restarts:
            assert await self.rb.begin()
        await self.b.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        self.rb.remote_description(offer)
        await self.b.setLocalDescription(await self.b.createAnswer())
        answer = self.b.localDescription.sdp
        assert self.ra.is_restart(answer) == answerer_restarts
        if not trickle:
            await self.a.setRemoteDescription(RTCSessionDescription(answer, "answer"))
            self.ra.remote_description(answer)
            return
        # As a browser does: the description first, its candidates a little later.
        lines = answer.splitlines()
        bare = (
            "\r\n".join(x for x in lines if not x.startswith(("a=candidate", "a=end-of"))) + "\r\n"
        )
        await self.a.setRemoteDescription(RTCSessionDescription(bare, "answer"))
        self.ra.remote_description(bare)
        await asyncio.sleep(0.3)
        for line in lines:
            if line.startswith("a=candidate:"):
                candidate = candidate_from_sdp(line[len("a=candidate:") :])
                candidate.sdpMLineIndex = 0
                await self.a.addIceCandidate(candidate)
        await self.a.addIceCandidate(None)

    async def frames_flow(self) -> None:
        for _ in range(5):
            await recv(self.tracks[0])

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


def kill_path(pc: RTCPeerConnection) -> None:
    """The current pair's sockets swallow whatever arrives: a path gone silently."""
    dtls = dtls_transport(pc)
    assert dtls is not None
    for protocol in probe.sockets(probe.ice_connection(dtls)):
        protocol.datagram_received = lambda data, addr: None


async def test_restart_on_a_healthy_path_keeps_dtls_tracks_and_media(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(icerestart, "OLD_PAIR_GRACE", 0.5)
    call = Call()
    try:
        await call.start()
        dtls_a, dtls_b = dtls_transport(call.a), dtls_transport(call.b)
        assert dtls_a is not None and dtls_b is not None
        before = selected_pair_addresses(call.a), selected_pair_addresses(call.b)
        assert before[0] is not None and before[1] is not None
        ufrag = remote_ufrag(call.b.localDescription.sdp)
        keys = probe.srtp_sessions(dtls_a), probe.srtp_sessions(dtls_b)
        old = probe.ice_connection(dtls_a)
        await call.restart()
        await eventually(lambda: "" if call.done["a"] and call.done["b"] else str(call.done), 15)
        assert call.done == {"a": [True], "b": [True]}
        assert call.switched == {"a": 1, "b": 1}
        assert remote_ufrag(call.b.localDescription.sdp) != ufrag, "new credentials"
        after = selected_pair_addresses(call.a), selected_pair_addresses(call.b)
        assert after[0] is not None and after[1] is not None
        assert after[0].local != before[0].local and after[1].local != before[1].local, "new ports"
        # Same DTLS session: same transports, still connected, no new track on B.
        assert dtls_transport(call.a) is dtls_a and dtls_transport(call.b) is dtls_b
        assert dtls_a.state == dtls_b.state == "connected"
        assert (probe.srtp_sessions(dtls_a), probe.srtp_sessions(dtls_b)) == keys, "same DTLS"
        assert len(call.tracks) == 1
        await call.frames_flow()
        assert call.a.connectionState == call.b.connectionState == "connected"
        # The replaced connection kept receiving for a grace period, then closed its sockets.
        await eventually(lambda: "" if not probe.sockets(old) else "old sockets still open", 5)
        await call.frames_flow()
    finally:
        await call.close()


async def test_restart_moves_media_off_a_dead_path() -> None:
    call = Call()
    try:
        await call.start()
        kill_path(call.a)
        kill_path(call.b)
        # The dead path: nothing arrives any more.
        with pytest.raises(asyncio.TimeoutError):
            for _ in range(30):
                await recv(call.tracks[0], timeout=0.5)
        await call.restart()
        await eventually(lambda: "" if call.done["a"] and call.done["b"] else str(call.done), 15)
        assert call.done == {"a": [True], "b": [True]}
        await call.frames_flow()
        assert len(call.tracks) == 1
    finally:
        await call.close()


async def test_checks_wait_for_candidates_trickled_after_the_description() -> None:
    call = Call()
    try:
        await call.start()
        await call.restart(trickle=True)
        await eventually(lambda: "" if call.done["a"] and call.done["b"] else str(call.done), 15)
        assert call.done == {"a": [True], "b": [True]}
        await call.frames_flow()
    finally:
        await call.close()


async def test_failed_checks_put_the_old_connection_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icerestart, "DEADLINE", 1.0)
    call = Call()
    try:
        await call.start()
        dtls = dtls_transport(call.a)
        assert dtls is not None
        old = probe.ice_connection(dtls)
        # B answers the way stock aiortc does (its old credentials): A's new checks go
        # nowhere, and A goes on with its old connection.
        await call.restart(answerer_restarts=False)
        await eventually(lambda: "" if call.done["a"] else "still checking", 10)
        assert call.done["a"] == [False] and call.ra.failures == 1
        assert probe.ice_connection(dtls) is old and probe.gathering_connection(dtls) is old
        assert probe.consent_checked(old), "its consent checks run again"
        assert not call.ra.in_progress
        await call.frames_flow()
    finally:
        await call.close()


async def test_abandon_puts_the_old_connection_back() -> None:
    call = Call()
    try:
        await call.start()
        dtls = dtls_transport(call.a)
        assert dtls is not None
        old = probe.ice_connection(dtls)
        assert await call.ra.begin()
        assert probe.gathering_connection(dtls) is not old and call.ra.waiting_for_remote
        assert probe.ice_connection(dtls) is old, "the old one carries media meanwhile"
        await call.ra.abandon()
        assert probe.gathering_connection(dtls) is old and not call.ra.in_progress
        await call.frames_flow()
        # A renegotiation after it (a glare's rolled-back restart): the answer's candidates and
        # end-of-candidates are the old generation's, known already, and not refused.
        await negotiate(call.a, call.b)
        await call.frames_flow()
    finally:
        await call.close()


async def test_no_restart_before_ice_or_after_close() -> None:
    pc = new_pc()
    restart = IceRestart(pc)
    assert not await restart.begin(), "no transport yet"
    assert not restart.is_restart("v=0\r\na=ice-ufrag:abcd\r\n")
    await pc.close()
    call = Call()
    await call.start()
    await call.close()
    assert not await call.ra.begin(), "closed"


def test_remote_ufrag() -> None:
    assert remote_ufrag("v=0\r\nm=audio 9 x 0\r\na=ice-ufrag:Ab+/\r\na=ice-pwd:x\r\n") == "Ab+/"
    assert remote_ufrag("v=0\r\n") is None
