"""A Chromium publisher numbers its packets (transport-cc) and acts on our feedback (sfu.rtc.twcc).

How fast that makes it ramp up is a figure (loadtest/ramp.py), not an assertion: on a shared
machine the delay-based estimate is only as steady as the server's event loop. What is certain is
that Chromium reads the feedback: reporting every third packet lost (the recorder is made to
forget them) brings its estimate below its 300 kbps start within seconds, which neither our
REMB nor our receiver reports (no loss there) would do.
"""

from __future__ import annotations

import pytest

from sfu.rtc.twcc import TransportFeedback
from sfu.server import RunningServer
from tests.browser.conftest import OpenPage
from tests.util import eventually, eventually_async

_ESTIMATE = """
async () => {
  const pc = globalThis.sfuClient?.pc;
  if (!pc) return null;
  let estimate = null;
  (await pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.nominated && s.availableOutgoingBitrate)
      estimate = s.availableOutgoingBitrate;
  });
  return estimate;
}
"""


async def test_chromium_acts_on_our_transport_feedback(
    open_page: OpenPage, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = TransportFeedback.build

    def lose_every_third(self: TransportFeedback) -> list[bytes]:
        self.received[:] = [(seq, at) for seq, at in self.received if seq % 3]
        return build(self)

    monkeypatch.setattr(TransportFeedback, "build", lose_every_third)
    page = await open_page("twcc", "pub", mic=False)

    def numbered() -> str:
        feedback = [t for p in server.backend.participants() for t in p.transport_feedback]
        if not feedback:
            return "transport-cc not negotiated with the page"
        (twcc,) = feedback
        if twcc.packets < 50 or twcc.sent < 5:
            return f"{twcc.packets} numbered packets recorded, {twcc.sent} feedback packets"
        return ""

    await eventually(numbered, timeout=10)
    seen: list[int | None] = []

    async def lowered() -> str:
        seen.append(await page.page.evaluate(_ESTIMATE))
        if seen[-1] is None or seen[-1] >= 250_000:
            return f"Chromium's available outgoing bitrate: {seen[-8:]}"
        return ""

    # Seen here: 315 kbps after 1 s, 218 after 4, 99 after 8. With no feedback at all it would
    # climb to our REMB (2.5 Mbps) and then decay by a fifth a second (libwebrtc's feedback
    # timeout): 12 s to get this low.
    await eventually_async(lowered, timeout=8, interval=0.5)
