"""Hooks: sfu.rtc.ice chooses where aioice gathers (addresses, ports), what it announces, keeps
why a TURN allocation failed, and takes malformed STUN for what it is."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterator

import aioice
import aioice.ice
import aioice.stun
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from sfu.rtc import ice, probe
from signaling.turn import rest_credential
from tests.turnserver import REALM, SECRET, Coturn


@pytest.fixture(autouse=True)
def reset_hooks() -> Iterator[None]:
    yield
    ice.set_ice_addresses(["127.0.0.1"])
    ice.set_port_range(None)
    ice.set_announced_addresses({})


async def gather(**kwargs: object) -> list[aioice.Candidate]:
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False, **kwargs)  # type: ignore[arg-type]
    try:
        await connection.gather_candidates()
        return connection.local_candidates
    finally:
        await connection.close()


def test_addresses_are_filtered_by_family() -> None:
    ice.set_ice_addresses(["127.0.0.1", "::1"])
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]


def test_bad_settings_fail_at_once() -> None:
    with pytest.raises(ValueError):
        ice.set_ice_addresses(["not-an-ip"])
    with pytest.raises(ValueError):
        ice.set_port_range((50100, 50000))
    with pytest.raises(ValueError):
        ice.set_announced_addresses({"10.0.0.1": "2001:db8::1"})


async def test_gathers_a_loopback_host_candidate() -> None:
    # aioice alone skips 127.0.0.1: this is what lets a loopback-only namespace work at all.
    ice.set_ice_addresses(["127.0.0.1"])
    assert [(c.host, c.type) for c in await gather()] == [("127.0.0.1", "host")]


async def test_host_candidates_bind_in_the_port_range() -> None:
    ice.set_ice_addresses(["127.0.0.1"])
    ice.set_port_range((40200, 40202))
    connections = [aioice.Connection(ice_controlling=True, use_ipv6=False) for _ in range(4)]
    try:
        for connection in connections:
            await connection.gather_candidates()
        ports = [[c.port for c in conn.local_candidates] for conn in connections]
        # Three ports, three connections; the fourth finds none free (and says so in the log).
        assert sorted(p for [p] in ports[:3]) == [40200, 40201, 40202]
        assert ports[3] == []
    finally:
        for connection in connections:
            await connection.close()
    # Closed connections give their ports back.
    [candidate] = await gather()
    assert 40200 <= candidate.port <= 40202


async def test_host_candidates_announce_the_public_address() -> None:
    ice.set_ice_addresses(["127.0.0.1"])
    ice.set_announced_addresses({"127.0.0.1": "198.51.100.7"})
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        [candidate] = connection.local_candidates
        assert (candidate.type, candidate.host) == ("host", "198.51.100.7")
        # Bound on the private address: the NAT's port forward delivers there.
        [protocol] = probe.sockets(connection)
        assert protocol.transport.get_extra_info("sockname")[0] == "127.0.0.1"
    finally:
        await connection.close()
    # The one-address form maps every local address of its family.
    ice.set_announced_addresses({"": "198.51.100.8"})
    assert [c.host for c in await gather()] == ["198.51.100.8"]


async def test_a_refused_allocation_is_named(coturn: Coturn) -> None:
    expired = rest_credential(SECRET, "late", int(time.time()) - 60)
    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[
                RTCIceServer(coturn.url, username=expired.username, credential=expired.credential)
            ],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )
    try:
        assert ice.turn_failure(pc) is None  # nothing gathered yet
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        assert "a=candidate" not in pc.localDescription.sdp  # aiortc says nothing else
        reason = ice.turn_failure(pc)
        assert reason == (
            f"TURN server 127.0.0.1:{coturn.port}: allocation refused: 401 Unauthorized "
            "(wrong or expired credentials)"
        ), reason
    finally:
        await pc.close()
    assert REALM in coturn.log() and coturn.refusals() >= 1


async def test_an_unreachable_turn_server_is_named() -> None:
    pc = RTCPeerConnection(
        RTCConfiguration(
            iceServers=[RTCIceServer("turn:127.0.0.1:9", username="u", credential="p")],
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        reason = ice.turn_failure(pc)
        assert reason is not None and reason.startswith("TURN server 127.0.0.1:9: "), reason
    finally:
        await pc.close()


async def test_a_check_in_progress_goes_again_when_the_remote_checks_us(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a triggered check can complete the lossy side before this retransmission timer.
    monkeypatch.setattr(aioice.stun, "RETRY_RTO", 30.0)
    ice.set_ice_addresses(["127.0.0.1"])
    a = aioice.Connection(ice_controlling=True, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, use_ipv6=False)
    try:
        for conn in (a, b):
            await conn.gather_candidates()
        # B's first check is lost, as through a TURN allocation with no permission for it yet.
        [protocol] = probe.sockets(b)
        send = protocol.send_stun
        dropped: list[aioice.stun.Message] = []

        def lossy(message: aioice.stun.Message, addr: tuple[str, int]) -> None:
            if message.message_class == aioice.stun.Class.REQUEST and not dropped:
                dropped.append(message)
                return
            send(message, addr)

        protocol.send_stun = lossy
        for local, remote in ((a, b), (b, a)):
            local.remote_username = remote.local_username
            local.remote_password = remote.local_password
            for candidate in remote.local_candidates:
                await local.add_remote_candidate(candidate)
            await local.add_remote_candidate(None)
        await asyncio.wait_for(asyncio.gather(a.connect(), b.connect()), 10)
        assert dropped
        assert probe.nominated(b) and probe.nominated(a)
    finally:
        await a.close()
        await b.close()


def _stun_with_short_priority() -> bytes:
    # A binding request whose PRIORITY attribute (0x0024) is 2 bytes long instead of 4.
    attribute = struct.pack("!HH", 0x0024, 2) + b"\x00\x01" + b"\x00\x00"
    return struct.pack("!HHI", 0x0001, len(attribute), 0x2112A442) + bytes(12) + attribute


def test_a_malformed_stun_message_is_not_stun_to_aioice() -> None:
    ice.harden_stun()
    with pytest.raises(ValueError, match="malformed STUN message"):
        aioice.stun.parse_message(_stun_with_short_priority())
    with pytest.raises(ValueError, match="less than 20 bytes"):  # aioice's own, untouched
        aioice.stun.parse_message(b"\x00\x01")


async def test_a_malformed_stun_datagram_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ice.harden_stun()
    connection = aioice.Connection(ice_controlling=True, use_ipv6=False)
    try:
        await connection.gather_candidates()
        [candidate] = connection.local_candidates
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(_stun_with_short_priority(), (candidate.host, candidate.port))
        await asyncio.sleep(0.2)
    finally:
        await connection.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
