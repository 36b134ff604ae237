"""Hook: sfu.rtc.relay counts MediaRelay's private proxies and reader tasks."""

from __future__ import annotations

import asyncio

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import AudioStreamTrack

from sfu.rtc import relay as rtc_relay


async def test_counts_follow_subscribe_and_stop() -> None:
    relay, source = MediaRelay(), AudioStreamTrack()
    proxy = relay.subscribe(source)
    assert rtc_relay.proxy_count(relay) == 0  # a proxy registers on its first recv()
    await asyncio.wait_for(proxy.recv(), 2)
    assert (rtc_relay.proxy_count(relay), rtc_relay.source_count(relay)) == (1, 1)
    proxy.stop()
    assert rtc_relay.proxy_count(relay) == 0
    source.stop()
