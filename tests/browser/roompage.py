"""One Chromium tab on the room page, and what the tests read from it.

Media is read from the browser's own getStats() and DOM, not from the library under test: each
remote tile's <video> holds a stream whose tracks are matched to `inbound-rtp` stats by track id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from playwright.async_api import ConsoleMessage, Error, Page

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
    const report = await pc.getStats();
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


class RoomPage:
    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        self.name = name
        self.console_errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _on_page_error(self, error: Error) -> None:
        self.console_errors.append(f"uncaught: {error}")

    async def open(self, base_url: str, room: str, *, cam: bool = True, mic: bool = True) -> None:
        query: dict[str, str] = {"room": room, "name": self.name}
        if not cam:
            query["cam"] = "0"
        if not mic:
            query["mic"] = "0"
        await self.page.goto(f"{base_url}?{urlencode(query)}")

    async def media(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate(_READ_MEDIA)
        return result

    async def peer_id(self) -> str | None:
        state = await self.media()
        peer_id: str | None = state["peerId"]
        return peer_id

    async def status_text(self) -> str:
        return await self.page.inner_text("#status-text")


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
