"""One tab on the room page, in Chromium (Playwright) or Firefox (WebDriver BiDi), and what the
tests read from it.

Media is read from the browser's own getStats() and DOM, not from the library under test: each
remote tile's <video> holds a stream whose tracks are matched to `inbound-rtp` stats by track id.
The same script reads both engines.
"""

from __future__ import annotations

import abc
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import ConsoleMessage, Error, Page

from tests.util import eventually_async

# Per remote tile (by data-peer-id): the name shown, the <video>'s size, and the inbound stats of
# the tracks its <video> and <audio> play; plus the connection's state and the selected ICE pair.
_READ_MEDIA = """
async () => {
  const client = globalThis.sfuClient;
  const pc = client?.pc;
  const tiles = {};
  const byTrack = new Map();
  let pair = null;
  if (pc) {
    // Firefox's getStats() never settles when the connection closes meanwhile (the page
    // replaces its connection on glare at the first exchange): give up, the caller polls again.
    const late = new Promise((resolve) => setTimeout(() => resolve(null), 2000));
    const report = (await Promise.race([pc.getStats(), late])) ?? new Map();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    for (const s of byId.values()) {
      if (s.type === "inbound-rtp") byTrack.set(s.trackIdentifier, s);
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const p = byId.get(s.selectedCandidatePairId);
        pair = [byId.get(p.localCandidateId).candidateType,
                byId.get(p.remoteCandidateId).candidateType];
      }
    }
  }
  for (const tile of document.querySelectorAll(".tile.remote")) {
    const video = tile.querySelector("video");
    const entry = {
      name: tile.querySelector(".name").textContent,
      videoWidth: video.videoWidth,
      videoHeight: video.videoHeight,
      stats: tile.querySelector(".stats").textContent,
      video: null,
      audio: null,
    };
    const tracks = new Set();
    for (const element of tile.querySelectorAll("video, audio")) {
      for (const track of element.srcObject?.getTracks() ?? []) tracks.add(track);
    }
    for (const track of tracks) {
      const s = byTrack.get(track.id);
      if (!s) continue;
      entry[track.kind] = track.kind === "video"
        ? {framesDecoded: s.framesDecoded ?? 0, frameWidth: s.frameWidth ?? 0}
        : {packetsReceived: s.packetsReceived ?? 0,
           totalSamplesReceived: s.totalSamplesReceived ?? 0};
    }
    tiles[tile.dataset.peerId] = entry;
  }
  return {
    peerId: client?.peerId ?? null,
    status: client?.status ?? null,
    rollbacks: client?.rollbacks ?? 0,
    signalingState: pc?.signalingState ?? null,
    connectionState: pc?.connectionState ?? null,
    pair,
    icePath: document.getElementById("ice-path").textContent,
    transceivers: pc ? pc.getTransceivers().map(
      (t) => `${t.mid}:${t.receiver.track.kind}:${t.direction}/${t.currentDirection}`) : [],
    participants: client ? [...client.participants.values()].map(
      (p) => `${p.name}:${[...p.tracks.keys()].join("+")}`) : [],
    tiles,
  };
}
"""


_STATUS_TEXT = '() => document.getElementById("status-text").innerText'


class RoomTab(abc.ABC):
    """The room page in one tab of some browser engine."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.console_errors: list[str] = []

    @abc.abstractmethod
    async def goto(self, url: str) -> None:
        """Load the URL and wait for the page's load event."""

    @abc.abstractmethod
    async def evaluate(self, function: str) -> Any:
        """Call a JavaScript function (source text, maybe async) in the page; its result as JSON."""

    async def open(self, base_url: str, room: str, *, cam: bool = True, mic: bool = True) -> None:
        query: dict[str, str] = {"room": room, "name": self.name}
        if not cam:
            query["cam"] = "0"
        if not mic:
            query["mic"] = "0"
        await self.goto(f"{base_url}?{urlencode(query)}")

    async def media(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.evaluate(_READ_MEDIA)
        return result

    async def peer_id(self) -> str | None:
        state = await self.media()
        peer_id: str | None = state["peerId"]
        return peer_id

    async def status_text(self) -> str:
        text: str = await self.evaluate(_STATUS_TEXT)
        return text


class RoomPage(RoomTab):
    """A Chromium tab, driven by Playwright."""

    def __init__(self, page: Page, name: str) -> None:
        super().__init__(name)
        self.page = page
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_page_error(self, error: Error) -> None:
        self.console_errors.append(f"uncaught: {error}")

    async def goto(self, url: str) -> None:
        await self.page.goto(url)

    async def evaluate(self, function: str) -> Any:
        return await self.page.evaluate(function)


def frames_decoded(state: dict[str, Any], peer_id: str) -> int:
    tile = state["tiles"].get(peer_id)
    if tile is None or tile["video"] is None:
        return 0
    frames: int = tile["video"]["framesDecoded"]
    return frames


def describe_missing_media(
    state: dict[str, Any], peers: dict[str, str], *, audio: set[str], since: dict[str, int]
) -> str:
    """'' once every peer's video decodes past `since` at a real size, and audio arrives from the
    peers in `audio`; else what is missing (peers maps peer_id to a display name)."""
    for peer_id, name in peers.items():
        tile = state["tiles"].get(peer_id)
        if tile is None:
            return f"no tile for {name}; tiles: {sorted(state['tiles'])}"
        if tile["video"] is None:
            return f"{name}'s tile has no video track with stats"
        if tile["video"]["framesDecoded"] <= since.get(peer_id, 0):
            return f"{name}'s video: framesDecoded {tile['video']['framesDecoded']}, not growing"
        if tile["videoWidth"] <= 0:
            return f"{name}'s <video> has no size yet"
        if peer_id in audio:
            sound = tile["audio"]
            if sound is None or sound["packetsReceived"] <= 0:
                return f"no audio from {name}: {sound}"
            if sound["totalSamplesReceived"] <= 0:
                return f"{name}'s audio is not played out: {sound}"
    return ""


async def peer_ids(*pages: RoomTab) -> dict[str, str]:
    """peer_id -> display name, once every page has been welcomed."""
    ids: dict[str, str] = {}
    for page in pages:

        async def welcomed(page: RoomTab = page) -> str:
            peer_id = await page.peer_id()
            if peer_id is None:
                return f"{page.name} has no peer_id: {await page.status_text()}"
            ids[peer_id] = page.name
            return ""

        await eventually_async(welcomed, timeout=10)
    return ids


async def media_flows(
    page: RoomTab, peers: dict[str, str], *, audio: set[str], timeout: float = 20
) -> None:
    """Every peer's video decodes on `page` and keeps decoding; audio arrives from `audio`."""
    first: dict[str, int] = {}

    async def started() -> str:
        state = await page.media()
        first.update({p: frames_decoded(state, p) for p in peers})
        reason = describe_missing_media(state, peers, audio=audio, since={})
        if reason:
            reason += (
                f" (signaling {state['signalingState']}, transceivers {state['transceivers']},"
                f" participants {state['participants']}, console errors {page.console_errors})"
            )
        return f"{page.name}: {reason}" if reason else ""

    await eventually_async(started, timeout=timeout)

    async def growing() -> str:
        state = await page.media()
        reason = describe_missing_media(state, peers, audio=set(), since=first)
        return f"{page.name}: {reason}" if reason else ""

    await eventually_async(growing, timeout=10)


def assert_no_console_errors(*pages: RoomTab) -> None:
    errors = {page.name: page.console_errors for page in pages if page.console_errors}
    assert not errors, f"console errors: {errors}"
