"""ICE restart with real Chromium, in a network namespace of its own: run by
tests/browser/test_ice_restart.py as
`unshare --net -- python -m tests.browser.icerestart_scenario PARENT_NS`; raises on what a user
would see go wrong, and prints its figures as JSON (last line).

A server in this process on 127.0.0.1; Chromium pages alice (camera) and bob (watching only); a
Python client carol (publishes a small test pattern, decodes alice's video).

1. bob's page calls `pc.restartIce()`: new credentials and a new pair, the same DTLS session
   (the server's certificate, the page's transport), no new `track` event, frames go on.
2. The server's current ICE port for alice is blocked for good (iptables, both ways): the
   server hears nothing from her for DEAD_PATH_TIMEOUT, restarts ICE itself, and her video
   reaches bob and carol again over a new pair; her page sees no new `track` and the same DTLS.
   Then once more with the server's detection off: her page notices (`disconnected`) and
   restarts ICE itself.
3. A 5 s blackout of all UDP: time from the restore to the first new frame at bob (Chromium)
   and at carol (Python).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

from playwright.async_api import async_playwright

from loadtest.netns import namespace_id
from sfu import participant as sfu_participant
from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.participant import DEAD_PATH_TIMEOUT, Participant
from sfu.rtc.candidates import selected_pair_addresses
from sfu.server import RunningServer
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.roompage import RoomPage
from tests.conftest import LOOPBACK, serving
from tests.util import eventually, eventually_async

ROOM = "restart"
BLACKOUT = 5.0

# Counts `track` events of every connection the page makes.
COUNT_TRACKS = """
globalThis.__trackEvents = 0;
const Native = RTCPeerConnection;
globalThis.RTCPeerConnection = class extends Native {
  constructor(...args) {
    super(...args);
    this.addEventListener("track", () => { globalThis.__trackEvents += 1; });
    this.addEventListener("connectionstatechange", () => {
      if (this.connectionState === "disconnected") globalThis.__disconnectedAt = Date.now();
    });
  }
};
"""

# The page's connection as getStats() and the DOM see it. The server's certificate comes from the
# DTLS transport itself: getStats() caches certificate stats, and a first call made before DTLS was
# up left bob's without the remote certificate for longer than 10 s in a loaded CI run.
READ = """
async () => {
  async function remoteFingerprint(pc) {
    const dtls = pc.getReceivers().map((r) => r.transport).find((t) => t);
    const [der] = dtls?.getRemoteCertificates() ?? [];
    if (!der) return null;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", der));
    return [...digest].map((b) => b.toString(16).padStart(2, "0")).join(":");
  }
  const pc = globalThis.sfuClient?.pc;
  if (!pc) return null;
  const byId = new Map();
  (await pc.getStats()).forEach((s) => byId.set(s.id, s));
  let transport = null, pair = null, decoded = 0, sent = 0;
  for (const s of byId.values()) {
    if (s.type === "transport") transport = s;
    if (s.type === "inbound-rtp" && s.kind === "video") decoded += s.framesDecoded ?? 0;
    if (s.type === "outbound-rtp" && s.kind === "video") sent += s.framesEncoded ?? 0;
  }
  if (transport?.selectedCandidatePairId) {
    const p = byId.get(transport.selectedCandidatePairId);
    pair = [byId.get(p.localCandidateId).port, byId.get(p.remoteCandidateId).port];
  }
  return {
    ufrag: transport?.iceLocalUsernameFragment ?? null,
    dtls: transport?.dtlsState ?? null,
    fingerprint: await remoteFingerprint(pc),
    pair, decoded, sent,
    tracks: globalThis.__trackEvents,
    state: pc.connectionState,
    restarts: globalThis.sfuClient.iceRestarts ?? 0,
    disconnectedAt: globalThis.__disconnectedAt ?? null,
  };
}
"""


def iptables(*rule: str) -> None:
    subprocess.run(["iptables", *rule], check=True, capture_output=True)


async def read(page: RoomPage) -> dict[str, Any]:
    state: dict[str, Any] | None = await page.evaluate(READ)
    assert state is not None, f"{page.name} has no connection"
    return state


class Frames:
    """Arrival times of a Python client's decoded frames."""

    def __init__(self, track: Any) -> None:
        self.times: list[float] = []
        self._task = asyncio.ensure_future(self._run(track))

    async def _run(self, track: Any) -> None:
        while True:
            await track.recv()
            self.times.append(time.monotonic())

    def first_after(self, moment: float) -> float | None:
        return next((t - moment for t in self.times if t > moment), None)

    async def wait_after(self, moment: float, timeout: float = 20) -> float | None:
        """Seconds from `moment` to the first frame after it; None if none came in time (a
        figure, not an assertion: aiortc's jitter buffer may stall after an outage)."""
        for _ in range(int(timeout / 0.02)):
            if (first := self.first_after(moment)) is not None:
                return first
            await asyncio.sleep(0.02)
        return None

    def close(self) -> None:
        self._task.cancel()


def in_place(totals: Any) -> int:
    """ICE restarts completed in place, whoever began them."""
    return sum(n for (_, path), n in totals.ice_restarts.items() if path == "in_place")


def participant(server: RunningServer, peer_id: str | None) -> Participant:
    (found,) = [p for p in server.backend.participants() if p.id == peer_id]
    return found


async def decoding(page: RoomPage, since: int, timeout: float = 20) -> float:
    """Wait until the page decodes more than `since` frames; when it did (monotonic)."""

    async def more() -> str:
        state: dict[str, Any] | None = await page.evaluate(READ)
        if state is None:  # the page loaded; its connection comes with its welcome
            return f"{page.name} has no connection yet"
        return "" if state["decoded"] > since else f"{page.name} decoded {state['decoded']}"

    await eventually_async(more, timeout=timeout, interval=0.02)
    return time.monotonic()


async def scenario() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with serving() as server, async_playwright() as playwright:
        totals = server.backend.totals
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        pages: dict[str, RoomPage] = {}
        for name, cam in (("alice", True), ("bob", False)):
            context = await browser.new_context(viewport={"width": 640, "height": 480})
            page = RoomPage(await context.new_page(), name)
            await page.page.add_init_script(COUNT_TRACKS)
            await page.open(server.page_url, ROOM, cam=cam, mic=False)
            pages[name] = page
        alice, bob = pages["alice"], pages["bob"]
        carol = Client(server.url, ROOM, name="carol", ice_addresses=LOOPBACK)
        await carol.connect()
        await carol.publish(TestPatternTrack(160, 120, fps=10))
        remote = await carol.next_track(20)
        frames = Frames(remote.track)
        try:
            await decoding(bob, 0)
            await decoding(alice, 0)  # carol's pattern
            await eventually(lambda: "" if len(frames.times) > 5 else "carol: no frames", 20)

            # 1. The page restarts ICE on a healthy path.
            async def keyed() -> str:
                return "" if (await read(bob))["fingerprint"] else "bob: no remote certificate"

            await eventually_async(keyed, timeout=30)
            before = await read(bob)
            began = time.monotonic()
            await bob.evaluate("() => globalThis.sfuClient.pc.restartIce()")

            async def moved() -> str:
                now = await read(bob)
                if now["pair"] == before["pair"]:
                    return f"bob: still on {now['pair']}"
                return "" if now["decoded"] > before["decoded"] else "bob: no frames"

            await eventually_async(moved, timeout=20, interval=0.02)
            figures["restartIce_to_frames_on_new_pair"] = time.monotonic() - began
            after = await read(bob)
            assert after["fingerprint"] == before["fingerprint"] is not None, (before, after)
            assert after["dtls"] == "connected" and after["tracks"] == before["tracks"], after
            # Ours, or the server's if it took bob's silence under load for a dead path (then the
            # page rolled its offer back and answered the server's).
            await eventually(lambda: "" if in_place(totals) else str(totals.ice_restarts), 5)
            await decoding(bob, after["decoded"] + 10)

            # 2. The server's port for alice is blocked for good.
            alice_in = participant(server, await alice.peer_id())
            pair = selected_pair_addresses(alice_in.pc)
            assert pair is not None
            port = str(pair.local[1])
            before = await read(alice)
            seen_bob = (await read(bob))["decoded"]
            (publication,) = alice_in.publications.values()
            iptables("-A", "INPUT", "-p", "udp", "--dport", port, "-j", "DROP")
            iptables("-A", "INPUT", "-p", "udp", "--sport", port, "-j", "DROP")
            blocked, dead = time.monotonic(), totals.dead_paths
            restarted = in_place(totals)
            await eventually(lambda: "" if totals.dead_paths > dead else "not seen", 15, 0.02)
            figures["dead_path_detected_by_server"] = time.monotonic() - blocked
            await eventually(
                lambda: "" if in_place(totals) > restarted else "no restart completed", 30
            )
            packets = publication.packets
            await eventually(lambda: "" if publication.packets > packets else "no RTP", 10, 0.01)
            figures["blocked_to_rtp_on_new_pair"] = time.monotonic() - blocked
            seen = await decoding(bob, seen_bob + 1)
            figures["blocked_to_frames_at_chromium"] = seen - blocked
            # From past the detection: frames may still drain from before the block.
            first = await frames.wait_after(blocked + DEAD_PATH_TIMEOUT)
            figures["blocked_to_frames_at_python"] = first and first + DEAD_PATH_TIMEOUT
            after = await read(alice)
            assert after["pair"] != before["pair"] and after["ufrag"] != before["ufrag"], after
            assert after["fingerprint"] == before["fingerprint"] and after["dtls"] == "connected"
            assert after["tracks"] == before["tracks"], (before, after)
            new_pair = selected_pair_addresses(alice_in.pc)
            assert new_pair is not None and str(new_pair.local[1]) != port

            # 2b. The same, with the server's own detection off: the page notices (Chromium's
            # `disconnected`, ~6 s) and restarts ICE itself after its grace.
            sfu_participant.DEAD_PATH_TIMEOUT = 3600.0
            pair = selected_pair_addresses(alice_in.pc)
            assert pair is not None
            port = str(pair.local[1])
            seen_bob = (await read(bob))["decoded"]
            page_restarts = (await read(alice))["restarts"]
            iptables("-A", "INPUT", "-p", "udp", "--dport", port, "-j", "DROP")
            iptables("-A", "INPUT", "-p", "udp", "--sport", port, "-j", "DROP")
            blocked, blocked_wall = time.monotonic(), time.time()

            async def frames_again() -> str:
                now = await read(alice)
                if now["restarts"] == page_restarts:
                    return f"alice: {now['state']}, no restart of her own yet"
                return "" if (await read(bob))["decoded"] > seen_bob else "bob: no new frames"

            await eventually_async(frames_again, timeout=30, interval=0.02)
            seen_wall = time.time()
            noticed = (await read(alice))["disconnectedAt"] / 1000
            figures["chromium_noticed_dead_path_after"] = noticed - blocked_wall
            figures["chromium_noticed_to_frames_at_chromium"] = seen_wall - noticed
            figures["blocked_to_frames_at_chromium_client_side"] = time.monotonic() - blocked
            sfu_participant.DEAD_PATH_TIMEOUT = DEAD_PATH_TIMEOUT

            # 3. A 5 s blackout of all UDP. (A reference run for the figures: the same with no
            # ICE restart by the server, ICERESTART_REFERENCE=1.)
            if os.environ.get("ICERESTART_REFERENCE"):
                sfu_participant.DEAD_PATH_TIMEOUT = 3600.0
            seen_bob = (await read(bob))["decoded"]
            iptables("-I", "INPUT", "-p", "udp", "-j", "DROP")
            await asyncio.sleep(BLACKOUT)
            iptables("-D", "INPUT", "-p", "udp", "-j", "DROP")
            restored = time.monotonic()
            stalled = (await read(bob))["decoded"]
            seen = await decoding(bob, stalled, timeout=30)
            figures["blackout_restore_to_frame_chromium"] = seen - restored
            figures["blackout_restore_to_frame_python"] = await frames.wait_after(restored)
            assert seen_bob <= stalled
            restarts = totals.ice_restarts.items()
            figures["server_restarts"] = {f"{side}/{path}": n for (side, path), n in restarts}
            figures["dead_paths"] = totals.dead_paths
            figures["page_restarts"] = {n: (await read(p))["restarts"] for n, p in pages.items()}
            errors = {n: p.console_errors for n, p in pages.items() if p.console_errors}
            assert not errors, errors
        finally:
            frames.close()
            await carol.close()
            await browser.close()
    return figures


def main(parent_namespace: str) -> None:
    # Only ever in a namespace made for this run: never the one the tests run in.
    if namespace_id() == parent_namespace:
        raise SystemExit("refusing: not a fresh network namespace")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if os.environ.get("ICERESTART_DEBUG"):
        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)d %(name)s %(message)s")
        for name in ("aioice", "aiortc", "asyncio", "signaling"):
            logging.getLogger(name).setLevel(logging.WARNING)
    print(json.dumps(asyncio.run(scenario())))


if __name__ == "__main__":
    main(sys.argv[1])
