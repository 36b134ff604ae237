"""Dynacast with real Chromium: layers nobody receives are paused at the source.

The room page publishes three layers; two Python subscribers on `auto` (bandwidth to spare) want
`h`, so all three flow; then both ask for `l`: the publisher's own getStats() shows its `m` and
`h` encodings inactive (no frames sent); when one subscriber asks for `h`, that encoding is
active again and the subscriber gets it.
"""

from __future__ import annotations

import time
from typing import Any

from sfu.client import Client, RemoteTrack
from sfu.dynacast import PAUSE_DELAY
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.browser.roompage import RoomPage
from tests.browser.test_simulcast import maintain_resolution
from tests.conftest import MakeClient
from tests.util import eventually_async

# The publisher's encodings, by RID: active or paused, and frames sent so far.
_ENCODINGS = """
async () => {
  const out = {};
  (await globalThis.sfuClient.pc.getStats()).forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video" && s.rid)
      out[s.rid] = {active: s.active, frames: s.framesSent ?? 0};
  });
  return out;
}
"""


async def encodings(page: RoomPage) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = await page.page.evaluate(_ENCODINGS)
    return found


async def video_of(client: Client) -> RemoteTrack:
    while True:
        remote = await client.next_track(timeout=20)
        if remote.kind == "video":
            return remote


async def test_layers_nobody_receives_are_paused_and_come_back(
    open_page: OpenPage, make_client: MakeClient, server: RunningServer
) -> None:
    alice = await open_page("dynacast", "alice", mic=False)
    bob = await make_client("dynacast", decode=False)
    carol = await make_client("dynacast", decode=False)
    bob_video, carol_video = await video_of(bob), await video_of(carol)

    async def all_three_sent() -> str:
        # Both subscribers on `auto`, with bandwidth to spare: both want h, and what is below it
        # keeps flowing (for a step down).
        sent = await encodings(alice)
        flowing = {rid for rid, e in sent.items() if e["active"] and e["frames"] > 0}
        return "" if flowing == {"l", "m", "h"} else f"encodings: {sent}"

    await maintain_resolution(alice)  # a busy Chromium would drop h for CPU, not for dynacast
    await eventually_async(all_three_sent, timeout=40, interval=0.25)
    await bob.set_layer(bob_video, "l")
    await carol.set_layer(carol_video, "l")

    previous: dict[str, dict[str, Any]] = {}

    async def only_l_sent() -> str:
        # Paused: inactive, and no frame sent since the last look (0.5 s ago).
        nonlocal previous
        now = await encodings(alice)
        before, previous = previous, now
        for rid in ("m", "h"):
            e = now.get(rid, {})
            if e.get("active") is not False or e.get("frames") != before.get(rid, {}).get("frames"):
                return f"{rid} still sent: {now}"
        if not now.get("l", {}).get("active"):
            return f"l paused too: {now}"
        return ""

    await eventually_async(only_l_sent, timeout=PAUSE_DELAY + 10, interval=0.5)
    assert alice.console_errors == []
    assert bob.published_layers == {}  # told to the publisher only

    asked = time.monotonic()
    await carol.set_layer(carol_video, "h")

    async def h_back() -> str:
        e = (await encodings(alice)).get("h", {})
        return "" if e.get("active") and e.get("frames", 0) > 0 else f"h: {e}"

    await eventually_async(h_back, timeout=15, interval=0.1)
    await carol.wait_layer(carol_video, "h", timeout=10)
    resumed = time.monotonic() - asked
    # The figure (the issue asks for a second) is reported, not asserted: a shared machine.
    print(f"dynacast: h forwarded again {resumed:.2f} s after it was asked for")
    assert bob_video.layer == "l"
