"""sfu.rtc.datachannel.bundle_data_channels: data channels opened before any track share the one
transport with the tracks, and the tracks' receivers start whoever started that transport;
offer_data_channels: a server's offer carries the data channels' m-line for the client's."""

from __future__ import annotations

import pytest

from sfu.media import TestPatternTrack
from sfu.rtc.datachannel import bundle_data_channels, offer_data_channels
from sfu.rtc.probe import tap_connect
from tests.rtc.pair import negotiate, new_pc
from tests.util import eventually


@pytest.mark.parametrize("hooked", [True, False])
async def test_channels_opened_first_then_a_track_answered_then_offered(hooked: bool) -> None:
    # What the Python client does when it joins a room with a publisher: its data channels are
    # made before anything else; the server offers video first (glare, rolled back here by
    # simply never sending the client's first offer); the client answers it, then offers its
    # data channels, whose m-line is the second of the BUNDLE group in the server's answer.
    client, server = new_pc(), new_pc()
    try:
        channel = client.createDataChannel("reliable")
        if hooked:
            bundle_data_channels(client)
        server.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
        await negotiate(server, client)
        await negotiate(client, server)

        def connected() -> str:
            states = (client.connectionState, server.connectionState, channel.readyState)
            return "" if states == ("connected", "connected", "open") else f"{states}"

        if hooked:
            await eventually(connected, timeout=10)
            assert client.sctp is not None and client.sctp.transport.state == "connected"
        else:  # aiortc alone stops the transport everything runs on
            transport = client.sctp.transport  # type: ignore[union-attr]
            await eventually(lambda: "" if transport.state == "failed" else transport.state, 10)
            assert channel.readyState != "open"
    finally:
        await client.close()
        await server.close()


async def test_aiortc_connects_again_once_the_shared_transport_is_up() -> None:
    # aiortc's connect task starts a transceiver's receiver only if it finds the DTLS transport
    # connected; when the data channels' branch of another task started it, none finds it so
    # (seen with one Chromium publisher in three). The hook runs connect again once it is up.
    client, server = new_pc(), new_pc()
    calls: list[str] = []
    try:

        def seen() -> None:
            sctp = client.sctp
            calls.append(sctp.transport.state if sctp is not None else "none")

        tap_connect(client, seen)
        client.createDataChannel("reliable")
        bundle_data_channels(client)
        bundle_data_channels(client)  # idempotent: one more run, not two
        await negotiate(client, server)
        await eventually(lambda: "" if "connected" in calls else f"connect ran with {calls}", 10)
        assert calls.count("connected") == 1
    finally:
        await client.close()
        await server.close()


@pytest.mark.parametrize("hooked", [True, False])
async def test_the_server_offers_the_data_channels_line_to_a_client_that_opened_channels(
    hooked: bool,
) -> None:
    # The server's first offer, for a client that said it opens data channels: its video, then
    # the data channels' m-line (no channel of its own), so that the client's channels open on
    # its answer, whoever offered first.
    client, server = new_pc(), new_pc()
    opened: list[str] = []
    try:
        server.on("datachannel", lambda channel: opened.append(channel.label))
        channel = client.createDataChannel("reliable")
        bundle_data_channels(client)
        server.addTransceiver(TestPatternTrack(160, 120), direction="sendonly")
        if hooked:
            offer_data_channels(server)
            offer_data_channels(server)  # idempotent
        await server.setLocalDescription(await server.createOffer())
        kinds = [m.split()[0] for m in server.localDescription.sdp.split("m=")[1:]]
        if not hooked:  # aiortc offers the line only once the server opens a channel itself
            assert kinds == ["video"]
            return
        assert kinds == ["video", "application"]  # JSEP's order: the tracks', then the data's
        await client.setRemoteDescription(server.localDescription)
        await client.setLocalDescription(await client.createAnswer())
        await server.setRemoteDescription(client.localDescription)

        def open_both_ways() -> str:
            states = (client.connectionState, channel.readyState, opened)
            return "" if states == ("connected", "open", ["reliable"]) else f"{states}"

        await eventually(open_both_ways, timeout=10)
        assert server.sctp is not None
        assert server.sctp.transport is server.getTransceivers()[0].receiver.transport
        # Later offers keep the line where it is, and the channel stays open.
        await negotiate(server, client)
        kinds = [m.split()[0] for m in server.localDescription.sdp.split("m=")[1:]]
        assert kinds == ["video", "application"] and channel.readyState == "open"
    finally:
        await client.close()
        await server.close()
