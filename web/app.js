// @ts-check
/**
 * The room page: a thin UI over SfuClient's events. It owns the local camera and microphone and
 * the DOM; which remote tracks exist, and whose they are, is the client's business alone.
 *
 * `/?room=R&name=N` joins at once (`&cam=0`, `&mic=0` join with that device off).
 */
import { SfuClient } from "./sfu-client.js";

/** @typedef {import("./sfu-client.js").Participant} Participant */
/** @typedef {import("./sfu-client.js").Status} Status */
/** @typedef {import("./sfu-client.js").InboundStats} InboundStats */
/** @typedef {import("./sfu-client.js").RemoteTrack} RemoteTrack */
/** @typedef {import("./sfu-client.js").LayerChoice} LayerChoice */

// Same rule as signaling/protocol.py (RoomName): the server refuses anything else.
const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
const STATS_INTERVAL_MS = 1000;

/**
 * @template {Element} T
 * @param {string} id
 * @param {{new (): T, prototype: T}} type
 * @returns {T}
 */
function byId(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`#${id} is not a ${type.name}`);
  return element;
}

const ui = {
  status: byId("status", HTMLElement),
  statusText: byId("status-text", HTMLElement),
  roomInfo: byId("room-info", HTMLElement),
  roomTitle: byId("room-title", HTMLElement),
  copyLink: byId("copy-link", HTMLButtonElement),
  lobby: byId("lobby", HTMLElement),
  form: byId("join-form", HTMLFormElement),
  roomInput: byId("room-input", HTMLInputElement),
  nameInput: byId("name-input", HTMLInputElement),
  joinCam: byId("join-cam", HTMLInputElement),
  joinMic: byId("join-mic", HTMLInputElement),
  formError: byId("form-error", HTMLElement),
  lobbyPreview: byId("lobby-preview", HTMLVideoElement),
  lobbyPreviewNote: byId("lobby-preview-note", HTMLElement),
  call: byId("call", HTMLElement),
  grid: byId("grid", HTMLElement),
  emptyNote: byId("empty-note", HTMLElement),
  soundBanner: byId("sound-banner", HTMLElement),
  enableSound: byId("enable-sound", HTMLButtonElement),
  controls: byId("controls", HTMLElement),
  icePath: byId("ice-path", HTMLElement),
  toggleMic: byId("toggle-mic", HTMLButtonElement),
  toggleCam: byId("toggle-cam", HTMLButtonElement),
  shareScreen: byId("share-screen", HTMLButtonElement),
  toggleStats: byId("toggle-stats", HTMLButtonElement),
  toggleChat: byId("toggle-chat", HTMLButtonElement),
  chat: byId("chat", HTMLElement),
  chatLog: byId("chat-log", HTMLOListElement),
  chatForm: byId("chat-form", HTMLFormElement),
  chatInput: byId("chat-input", HTMLInputElement),
  chatUnread: byId("chat-unread", HTMLElement),
  leave: byId("leave", HTMLButtonElement),
  count: byId("participant-count", HTMLElement),
  recording: byId("recording-badge", HTMLElement),
  tileTemplate: byId("tile-template", HTMLTemplateElement),
};

/**
 * @typedef {object} Tile
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} name
 * @property {HTMLElement} avatar
 * @property {HTMLElement} stats
 * @property {HTMLAudioElement | null} audio
 * @property {HTMLElement} layerPick shown once the server says the video is simulcast
 * @property {HTMLSelectElement} layerSelect
 * @property {RemoteTrack | null} remoteVideo
 * @property {RemoteTrack | null} remoteAudio
 * @property {MediaStream} stream what its <video> and <audio> play (a remote tile's own)
 * @property {boolean} screen a shared screen's tile (key `<peer id>/screen`), not a person's
 */

/** @type {Record<string, string>} how the stats overlay names each layer */
const LAYER_NAMES = { l: "low", m: "medium", h: "high" };

/** @type {SfuClient | null} */
let client = null;
/** @type {MediaStream} our camera and microphone, shown in the local tile */
let localStream = new MediaStream();
/** @type {Map<string, Tile>} by peer_id; "local" is ours */
const tiles = new Map();
/** @type {ReturnType<typeof setInterval> | undefined} */
let statsTimer;

// For the browser console and the tests: the session of this page.
Object.defineProperty(globalThis, "sfuClient", { get: () => client });

// --- status ---------------------------------------------------------------------------------

/** @type {Record<Status, string>} */
const STATUS_TEXT = {
  idle: "Not connected",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  failed: "Connection failed",
  closed: "You left the room",
};

/**
 * @param {Status} status
 * @param {string | null} reason
 */
function showStatus(status, reason) {
  ui.status.dataset.status = status;
  ui.statusText.textContent = reason ? `${STATUS_TEXT[status]} — ${reason}` : STATUS_TEXT[status];
}

// --- local media ----------------------------------------------------------------------------

/**
 * Ask for the devices (the browser's permission flow); a refusal leaves us receive-only.
 * @param {{audio: boolean, video: boolean}} wanted
 * @returns {Promise<MediaStreamTrack[]>}
 */
async function acquire(wanted) {
  if (!wanted.audio && !wanted.video) return [];
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: wanted.audio,
      // 720p: the top simulcast layer; the others are a half and a quarter of it.
      video: wanted.video ? { width: { ideal: 1280 }, height: { ideal: 720 } } : false,
    });
    return stream.getTracks();
  } catch (err) {
    const what = [wanted.video && "camera", wanted.audio && "microphone"].filter(Boolean);
    const message = err instanceof Error ? err.message : String(err);
    ui.formError.textContent = `No ${what.join(" or ")}: ${message}`;
    console.warn("aiosfu: getUserMedia failed", err);
    return [];
  }
}

/** @param {"audio" | "video"} kind */
function localTrack(kind) {
  return localStream.getTracks().find((t) => t.kind === kind);
}

function stopLocalMedia() {
  for (const track of localStream.getTracks()) track.stop();
  localStream = new MediaStream();
  ui.lobbyPreview.srcObject = null;
}

async function startLobbyPreview() {
  if (!ui.joinCam.checked || localTrack("video")) return;
  const tracks = await acquire({ audio: false, video: true });
  for (const track of tracks) localStream.addTrack(track);
  ui.lobbyPreview.srcObject = tracks.length > 0 ? localStream : null;
  ui.lobbyPreviewNote.hidden = tracks.length > 0;
}

// --- tiles ----------------------------------------------------------------------------------

/**
 * @param {string} key
 * @param {string} label
 * @param {MediaStream} stream
 * @param {boolean} local
 * @param {boolean} [screen] a shared screen: a large tile, first in the grid
 * @returns {Tile}
 */
function addTile(key, label, stream, local, screen = false) {
  const fragment = /** @type {DocumentFragment} */ (ui.tileTemplate.content.cloneNode(true));
  const root = /** @type {HTMLElement} */ (fragment.querySelector(".tile"));
  /** @type {Tile} */
  const tile = {
    root,
    video: /** @type {HTMLVideoElement} */ (root.querySelector("video")),
    name: /** @type {HTMLElement} */ (root.querySelector(".name")),
    avatar: /** @type {HTMLElement} */ (root.querySelector(".avatar")),
    stats: /** @type {HTMLElement} */ (root.querySelector(".stats")),
    audio: null,
    layerPick: /** @type {HTMLElement} */ (root.querySelector(".layer-pick")),
    layerSelect: /** @type {HTMLSelectElement} */ (root.querySelector(".layer-select")),
    remoteVideo: null,
    remoteAudio: null,
    stream,
    screen,
  };
  tile.layerSelect.addEventListener("change", () => {
    const remote = tile.remoteVideo;
    const layer = /** @type {LayerChoice} */ (tile.layerSelect.value);
    if (client && remote) client.setLayer(remote, layer);
  });
  root.classList.add(local ? "local" : "remote");
  root.classList.toggle("screen", screen);
  root.dataset.peerId = key;
  root.tabIndex = 0;
  if (!local) {
    // Video elements stay muted (autoplay is always allowed then); sound plays here.
    tile.audio = document.createElement("audio");
    tile.audio.autoplay = true;
    root.append(tile.audio);
  }
  tiles.set(key, tile);
  if (local || screen) ui.grid.prepend(root);
  else ui.grid.append(root);
  setTileName(tile, label);
  refreshTile(tile, stream);
  refreshRoomCount();
  return tile;
}

/**
 * @param {Tile} tile
 * @param {string} label
 */
function setTileName(tile, label) {
  tile.name.textContent = label;
  tile.avatar.dataset.initial = (label.trim()[0] ?? "?").toUpperCase();
  tile.root.setAttribute("aria-label", `${label}: video`);
}

/**
 * Show the avatar instead of a picture when the stream has no live, enabled video.
 * @param {Tile} tile
 * @param {MediaStream} stream
 */
function refreshTile(tile, stream) {
  const video = stream.getVideoTracks()[0];
  // A muted remote video shows the avatar too (the server forwards nothing of it meanwhile).
  const muted = tile.remoteVideo?.muted ?? false;
  tile.root.classList.toggle("no-video", !video || !video.enabled || muted);
  const audio = tile.root.classList.contains("local") ? localTrack("audio") : null;
  const micOff = tile.remoteAudio ? tile.remoteAudio.muted : audio ? !audio.enabled : false;
  tile.root.classList.toggle("mic-off", micOff && !tile.screen);
  // A media element holding a stream with no track delays the page's load event for ever.
  attach(tile.video, video ? stream : null);
  if (video) tile.video.play().catch(() => {});
  const sound = tile.audio && stream.getAudioTracks().length > 0;
  if (tile.audio) attach(tile.audio, sound ? stream : null);
  if (tile.audio && sound) {
    tile.audio.play().then(
      () => {},
      (/** @type {unknown} */ err) => {
        if (err instanceof DOMException && err.name === "NotAllowedError") {
          ui.soundBanner.hidden = false;
        }
      },
    );
  }
}

/**
 * @param {HTMLMediaElement} element
 * @param {MediaStream | null} stream
 */
function attach(element, stream) {
  if (element.srcObject !== stream) element.srcObject = stream;
}

/**
 * The quality picker of a remote tile: shown once the server has said which simulcast layer it
 * forwards (a video without simulcast has none to pick).
 * @param {Tile} tile
 */
function showLayer(tile) {
  const remote = tile.remoteVideo;
  tile.layerPick.hidden = !remote?.layer;
  if (remote) tile.layerSelect.value = remote.requested;
  tile.root.dataset.layer = remote?.layer ?? "";
}

/**
 * Highlight the tiles of who speaks (ours too); the loudest gets the strongest highlight.
 * @param {SfuClient} session
 * @param {{peer_id: string}[]} speakers loudest first
 */
function showSpeakers(session, speakers) {
  const keys = speakers.map((s) => (s.peer_id === session.peerId ? "local" : s.peer_id));
  for (const [key, tile] of tiles) {
    tile.root.classList.toggle("speaking", keys.includes(key));
    tile.root.classList.toggle("loudest", keys[0] === key);
  }
}

/** @param {string} key */
function removeTile(key) {
  const tile = tiles.get(key);
  if (!tile) return;
  tile.video.srcObject = null;
  if (tile.audio) tile.audio.srcObject = null;
  tile.root.remove();
  tiles.delete(key);
  refreshRoomCount();
}

function refreshRoomCount() {
  ui.grid.classList.toggle("has-screen", [...tiles.values()].some((t) => t.screen));
  const others = [...tiles.values()].filter((t) => !t.screen && t.root.matches(".remote")).length;
  ui.count.textContent = `${others + 1} in the room`;
  ui.emptyNote.hidden = others > 0;
}

/**
 * Put exactly these tracks in a tile's stream (its elements keep playing the same stream).
 * @param {MediaStream} stream
 * @param {(RemoteTrack | null | undefined)[]} remotes
 */
function syncStream(stream, remotes) {
  const wanted = new Set(remotes.flatMap((r) => (r ? [r.track] : [])));
  for (const track of stream.getTracks()) if (!wanted.has(track)) stream.removeTrack(track);
  for (const track of wanted) if (!stream.getTracks().includes(track)) stream.addTrack(track);
}

/**
 * A participant's tiles: its camera and microphone in its own tile, its shared screen (and the
 * screen's sound) in a large one of its own, there while it shares.
 * @param {Participant} participant
 */
function showParticipant(participant) {
  const tile = tiles.get(participant.peerId);
  if (tile) {
    tile.remoteVideo = participant.track("video") ?? null;
    tile.remoteAudio = participant.track("audio") ?? null;
    syncStream(tile.stream, [tile.remoteVideo, tile.remoteAudio]);
    showLayer(tile);
    refreshTile(tile, tile.stream);
  }
  const key = `${participant.peerId}/screen`;
  const screen = participant.screen("video");
  if (!screen) {
    removeTile(key);
    return;
  }
  const label = `${participantLabel(participant)}'s screen`;
  const shown = tiles.get(key) ?? addTile(key, label, new MediaStream(), false, true);
  shown.remoteVideo = screen;
  shown.remoteAudio = participant.screen("audio") ?? null;
  syncStream(shown.stream, [shown.remoteVideo, shown.remoteAudio]);
  refreshTile(shown, shown.stream);
}

/** @param {Participant} participant */
function participantLabel(participant) {
  return participant.name || `Guest ${participant.peerId.slice(0, 4)}`;
}

// --- stats overlay --------------------------------------------------------------------------

/** @param {number} bps */
function formatBitrate(bps) {
  if (bps >= 1_000_000) return `${(bps / 1_000_000).toFixed(2)} Mbps`;
  return `${Math.round(bps / 1000)} kbps`;
}

/**
 * @param {HTMLElement} list
 * @param {[string, string][]} rows
 */
function fillStats(list, rows) {
  list.replaceChildren(
    ...rows.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

/** @param {{width?: number, height?: number, fps?: number, bitrate: number}} video */
function videoRows(video) {
  /** @type {[string, string][]} */
  const rows = [];
  if (video.width && video.height) rows.push(["res", `${video.width}×${video.height}`]);
  if (video.fps !== undefined) rows.push(["fps", `${Math.round(video.fps)}`]);
  rows.push(["rate", formatBitrate(video.bitrate)]);
  return rows;
}

async function updateStats() {
  const session = client;
  if (!session) return;
  const stats = await session.stats();
  if (session !== client) return;
  for (const [peerId, tile] of tiles) {
    if (peerId === "local") {
      fillStats(tile.stats, stats.outboundVideo ? videoRows(stats.outboundVideo) : []);
      continue;
    }
    const peer = stats.peers.get(peerId);
    /** @type {[string, string][]} */
    const rows = peer?.video ? videoRows(peer.video) : [];
    const layer = tile.remoteVideo?.layer;
    if (layer) rows.push(["layer", LAYER_NAMES[layer] ?? layer]);
    if (peer?.audio) rows.push(["audio", formatBitrate(peer.audio.bitrate)]);
    fillStats(tile.stats, rows);
  }
  ui.icePath.textContent = stats.pair
    ? `ICE ${stats.pair.local} ↔ ${stats.pair.remote} (${stats.pair.protocol})`
    : "ICE —";
}

// --- chat -----------------------------------------------------------------------------------

const CHAT_MAX_CHARS = 2000;
let unread = 0;

/**
 * One message in the chat log. Everything is put in as text (textContent): markup a
 * participant sends shows as the characters it is made of.
 * @param {string} who
 * @param {string} text
 * @param {{own?: boolean, private?: boolean}} [how]
 */
function addChatMessage(who, text, how = {}) {
  const item = document.createElement("li");
  item.className = "message";
  item.classList.toggle("own", Boolean(how.own));
  item.classList.toggle("private", Boolean(how.private));
  const meta = document.createElement("div");
  meta.className = "meta";
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  const now = new Date();
  const time = document.createElement("time");
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(name, time);
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text.slice(0, CHAT_MAX_CHARS);
  item.append(meta, body);
  ui.chatLog.append(item);
  ui.chatLog.scrollTop = ui.chatLog.scrollHeight;
  if (ui.chat.hidden && !how.own) {
    unread += 1;
    showUnread();
  }
}

function showUnread() {
  ui.chatUnread.hidden = unread === 0;
  ui.chatUnread.textContent = String(unread);
  ui.toggleChat.setAttribute("aria-label", unread ? `Chat, ${unread} unread` : "Chat");
}

/** @param {boolean} open */
function showChat(open) {
  ui.chat.hidden = !open;
  ui.toggleChat.setAttribute("aria-pressed", String(open));
  if (open) {
    unread = 0;
    showUnread();
    ui.chatInput.focus();
  }
}

/** @param {import("./sfu-client.js").DataMessage} msg */
function onData(msg) {
  const payload = /** @type {{type?: unknown, text?: unknown}} */ (msg.payload);
  if (payload?.type !== "chat" || typeof payload.text !== "string") return;
  const who = msg.participant ? participantLabel(msg.participant) : `Guest ${msg.sender.slice(0, 4)}`;
  addChatMessage(who, payload.text, { private: msg.to !== null });
}

// --- the call -------------------------------------------------------------------------------

/**
 * @param {string} room
 * @param {string} name
 * @param {{audio: boolean, video: boolean}} wanted
 */
async function joinRoom(room, name, wanted) {
  const url = new URL(location.href);
  url.search = new URLSearchParams({ room, name }).toString();
  history.replaceState(null, "", url);
  localStorage.setItem("aiosfu.name", name);
  document.title = `${room} — aiosfu`;

  ui.lobby.hidden = true;
  ui.call.hidden = false;
  ui.controls.hidden = false;
  ui.roomInfo.hidden = false;
  ui.roomTitle.textContent = room;
  ui.lobbyPreview.srcObject = null;

  const session = new SfuClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    room,
    name,
    token: sessionStorage.getItem(tokenKey(room)),
  });
  client = session;
  session.on("welcome", () => {
    if (!session.mayPublish) watchOnly();
  });
  session.on("status", ({ status, reason }) => showStatus(status, reason));
  // A recorder sends nothing: no tile, a badge instead (everyone in the room may be recorded).
  const showRecording = () => {
    ui.recording.hidden = !session.recording;
  };
  session.on("participantjoined", (p) => {
    if (p.role === "recorder") showRecording();
    else addTile(p.peerId, participantLabel(p), new MediaStream(), false);
  });
  session.on("participantupdated", (p) => {
    const tile = tiles.get(p.peerId);
    if (tile) setTileName(tile, participantLabel(p));
  });
  session.on("participantleft", ({ participant }) => {
    removeTile(participant.peerId);
    removeTile(`${participant.peerId}/screen`);
    showRecording();
  });
  const onTrack = (/** @type {{participant: Participant}} */ { participant }) => {
    showParticipant(participant);
  };
  session.on("trackadded", onTrack);
  session.on("trackremoved", onTrack);
  session.on("trackstate", onTrack);
  session.on("activespeakers", (speakers) => showSpeakers(session, speakers));
  session.on("data", onData);
  session.on("layerchanged", (remote) => {
    const tile = tiles.get(remote.participant.peerId);
    if (tile && tile.remoteVideo === remote) showLayer(tile);
  });

  // Keep the tracks a lobby preview already opened; ask only for the rest.
  const missing = {
    video: wanted.video && !localTrack("video"),
    audio: wanted.audio && !localTrack("audio"),
  };
  if (!wanted.video) localTrack("video")?.stop();
  for (const track of localStream.getTracks()) {
    if (track.readyState === "ended") localStream.removeTrack(track);
  }
  const local = addTile("local", name ? `You (${name})` : "You", localStream, true);
  updateToggles();
  statsTimer = setInterval(() => void updateStats(), STATS_INTERVAL_MS);

  const joined = session.join().catch((/** @type {unknown} */ err) => {
    console.warn("aiosfu: could not join", err);
  });
  for (const track of localStream.getTracks()) session.publish(track);
  for (const track of await acquire(missing)) {
    if (session !== client || !session.mayPublish) {
      track.stop();
      continue;
    }
    localStream.addTrack(track);
    session.publish(track);
  }
  refreshTile(local, localStream);
  updateToggles();
  await joined;
}

function leaveRoom() {
  stopSharing();
  client?.leave();
  client = null;
  clearInterval(statsTimer);
  for (const key of [...tiles.keys()]) removeTile(key);
  stopLocalMedia();
  ui.call.hidden = true;
  showChat(false);
  ui.chatLog.replaceChildren();
  unread = 0;
  showUnread();
  ui.controls.hidden = true;
  ui.roomInfo.hidden = true;
  ui.recording.hidden = true;
  ui.soundBanner.hidden = true;
  ui.lobby.hidden = false;
  ui.icePath.textContent = "ICE —";
  document.title = "aiosfu — video rooms";
  ui.nameInput.focus();
  void startLobbyPreview();
}

function updateToggles() {
  /**
   * @param {HTMLButtonElement} button
   * @param {MediaStreamTrack | undefined} track
   * @param {string} on
   * @param {string} off
   */
  const show = (button, track, on, off) => {
    const active = Boolean(track && track.enabled && track.readyState === "live");
    button.setAttribute("aria-pressed", String(active));
    const label = /** @type {HTMLElement} */ (button.querySelector(".label"));
    label.textContent = active ? on : off;
  };
  show(ui.toggleMic, localTrack("audio"), "Mute", "Unmute");
  show(ui.toggleCam, localTrack("video"), "Stop video", "Start video");
  ui.shareScreen.setAttribute("aria-pressed", String(screenStream !== null));
  const label = /** @type {HTMLElement} */ (ui.shareScreen.querySelector(".label"));
  label.textContent = screenStream ? "Stop sharing" : "Share screen";
}

/**
 * Mute or unmute; a device we joined without is opened and published now.
 * @param {"audio" | "video"} kind
 */
async function toggle(kind) {
  const session = client;
  if (!session) return;
  const track = localTrack(kind);
  if (track) {
    session.mute(track, track.enabled); // the others see it muted; nothing is forwarded
  } else {
    for (const fresh of await acquire({ audio: kind === "audio", video: kind === "video" })) {
      if (session !== client) {
        fresh.stop();
        continue;
      }
      localStream.addTrack(fresh);
      session.publish(fresh);
    }
  }
  const local = tiles.get("local");
  if (local) refreshTile(local, localStream);
  updateToggles();
}

// --- screen share ---------------------------------------------------------------------------

/** @type {MediaStream | null} what we share, while we do */
let screenStream = null;

async function shareScreen() {
  const session = client;
  if (!session) return;
  if (screenStream) {
    stopSharing();
    return;
  }
  /** @type {MediaStream} */
  let stream;
  try {
    // Its sound too, when the browser offers it (a tab's, on Chromium).
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  } catch (err) {
    console.warn("aiosfu: no screen to share", err);
    return; // the user said no: nothing to undo
  }
  if (session !== client || screenStream) {
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  screenStream = stream;
  for (const track of stream.getTracks()) {
    if (track.kind === "video") track.contentHint = "detail"; // text stays sharp
    session.publish(track, track.kind === "video" ? "screen" : "screen_audio");
    // The browser's own "Stop sharing" ends the track: that ends the share for everyone.
    track.addEventListener("ended", stopSharing);
  }
  addTile("local/screen", "Your screen", stream, true, true);
  updateToggles();
}

function stopSharing() {
  const stream = screenStream;
  if (!stream) return;
  screenStream = null;
  for (const track of stream.getTracks()) {
    track.removeEventListener("ended", stopSharing);
    client?.unpublish(track);
    track.stop();
  }
  removeTile("local/screen");
  updateToggles();
}

// --- wiring ---------------------------------------------------------------------------------

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = ui.roomInput.value.trim();
  const name = ui.nameInput.value.trim();
  ui.roomInput.setAttribute("aria-invalid", String(!ROOM_PATTERN.test(room)));
  ui.nameInput.setAttribute("aria-invalid", String(!name));
  if (!ROOM_PATTERN.test(room)) {
    ui.formError.textContent = "Room: 1 to 64 letters, digits, dots, dashes or underscores.";
    ui.roomInput.focus();
    return;
  }
  if (!name) {
    ui.formError.textContent = "Please enter your name.";
    ui.nameInput.focus();
    return;
  }
  ui.formError.textContent = "";
  void joinRoom(room, name, { video: ui.joinCam.checked, audio: ui.joinMic.checked });
});

ui.joinCam.addEventListener("change", () => {
  if (ui.joinCam.checked) {
    void startLobbyPreview();
  } else {
    localTrack("video")?.stop();
    stopLocalMedia();
    ui.lobbyPreviewNote.hidden = false;
  }
});

ui.toggleMic.addEventListener("click", () => void toggle("audio"));
ui.toggleCam.addEventListener("click", () => void toggle("video"));
ui.shareScreen.addEventListener("click", () => void shareScreen());
ui.toggleStats.addEventListener("click", () => {
  const hidden = ui.grid.classList.toggle("hide-stats");
  ui.toggleStats.setAttribute("aria-pressed", String(!hidden));
});
ui.leave.addEventListener("click", leaveRoom);
ui.toggleChat.addEventListener("click", () => showChat(ui.chat.hidden));
ui.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text || !client) return;
  if (!client.sendData({ type: "chat", text })) {
    ui.chatInput.setAttribute("aria-invalid", "true");
    return; // not connected: the text stays, to be sent again
  }
  ui.chatInput.removeAttribute("aria-invalid");
  addChatMessage("You", text, { own: true });
  ui.chatInput.value = "";
});
ui.enableSound.addEventListener("click", () => {
  for (const tile of tiles.values()) tile.audio?.play().catch(() => {});
  ui.soundBanner.hidden = true;
});
ui.copyLink.addEventListener("click", async () => {
  const link = location.href;
  try {
    await navigator.clipboard.writeText(link);
    ui.copyLink.textContent = "Link copied";
  } catch {
    window.prompt("Copy this link to invite people:", link);
  }
  setTimeout(() => (ui.copyLink.textContent = "Copy invite link"), 2000);
});
window.addEventListener("pagehide", () => client?.leave());

/** @param {string} room */
function tokenKey(room) {
  return `aiosfu.token.${room}`;
}

/**
 * A `?token=` from an invite link: kept for this tab (a reload joins again with it), and taken
 * out of the address bar, so that a copied link or a shared screen does not give it away.
 * @param {URLSearchParams} params
 * @returns {boolean} whether there was one
 */
function takeToken(params) {
  const token = params.get("token");
  const room = params.get("room") ?? "";
  if (!token || !ROOM_PATTERN.test(room)) return false;
  sessionStorage.setItem(tokenKey(room), token);
  params.delete("token");
  const url = new URL(location.href);
  url.search = params.toString();
  history.replaceState(null, "", url);
  return true;
}

/** The room token does not grant `publish`: this tab only watches. */
function watchOnly() {
  for (const track of localStream.getTracks()) {
    track.stop();
    localStream.removeTrack(track);
  }
  ui.toggleCam.disabled = true;
  ui.toggleMic.disabled = true;
  const local = tiles.get("local");
  if (local) setTileName(local, "You (watching only)");
  updateToggles();
}

function main() {
  // Phones have no screen to share (no getDisplayMedia): no button then.
  ui.shareScreen.hidden = !navigator.mediaDevices?.getDisplayMedia;
  const params = new URLSearchParams(location.search);
  const invited = takeToken(params);
  const room = params.get("room") ?? "";
  const name = params.get("name") ?? localStorage.getItem("aiosfu.name") ?? "";
  ui.roomInput.value = room;
  ui.nameInput.value = name;
  ui.joinCam.checked = params.get("cam") !== "0";
  ui.joinMic.checked = params.get("mic") !== "0";
  if (ROOM_PATTERN.test(room) && (params.get("name") || invited)) {
    void joinRoom(room, name, { video: ui.joinCam.checked, audio: ui.joinMic.checked });
    return;
  }
  (room ? ui.nameInput : ui.roomInput).focus();
  void startLobbyPreview();
}

main();
