"""KeyframeThrottle (time passed in) and the subscription's wait-for-keyframe gate."""

from __future__ import annotations

import asyncio
from typing import Any

import av
import pytest
from aiortc import MediaStreamTrack

from sfu.keyframes import KeyframeThrottle
from sfu.subscription import Subscription


def test_throttle_sends_at_once_then_defers_within_the_window() -> None:
    t = KeyframeThrottle(interval=0.5)
    assert t.request(10.0) == 0.0
    assert t.request(10.1) == pytest.approx(0.4)  # deferred to the window's end, not dropped
    assert t.request(10.2) is None  # already due
    assert t.suppressed == 1
    t.fire(10.5)
    assert t.sent == 2
    assert t.request(10.6) == pytest.approx(0.4)
    t.fire(11.0)
    assert t.request(11.6) == 0.0
    assert t.sent == 4


def test_throttle_rejects_a_bad_interval() -> None:
    with pytest.raises(AssertionError):
        KeyframeThrottle(interval=0)


class FakeSource(MediaStreamTrack):
    kind = "video"

    def __init__(self, keyflags: list[bool]) -> None:
        super().__init__()
        self.packets = []
        for i, key in enumerate(keyflags):
            p = av.Packet(bytes([i]))
            p.pts = i
            p.is_keyframe = key
            self.packets.append(p)

    async def recv(self) -> Any:
        await asyncio.sleep(0)
        return self.packets.pop(0)


class FakePublication:
    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self.publisher_id = "pub"
        self.keyframe_requests = 0

    def subscribe(self) -> MediaStreamTrack:
        return self.source

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1


async def test_nothing_is_forwarded_before_a_keyframe() -> None:
    publication = FakePublication(FakeSource([False, False, True, False, True]))
    sub = Subscription(publication, "sub")  # type: ignore[arg-type]
    first = await sub.track.recv()
    assert (bytes(first), first.is_keyframe) == (b"\x02", True)
    assert sub.dropped == 2
    # One request when the sender starts pulling, then one per frame dropped while waiting.
    assert publication.keyframe_requests == 3
    second = await sub.track.recv()
    assert bytes(second) == b"\x03"  # after the first keyframe, every frame passes
    assert (sub.forwarded, publication.keyframe_requests) == (2, 3)
    sub.on_picture_loss()
    assert publication.keyframe_requests == 4
