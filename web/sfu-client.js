// @ts-check
/**
 * aiosfu browser client: one WebSocket to the hub (/ws) and one RTCPeerConnection with the server.
 *
 * The counterpart of the Python client (sfu/client.py), following the same rules
 * (docs/protocol.md, "Negotiation rules"):
 * - the client offers only when what it publishes changes (negotiationneeded), on its own
 *   `sendonly` transceivers (addTransceiver, never addTrack: a transceiver made by addTrack may be
 *   bound to one of the server's m-lines when its offer is applied);
 * - the server offers what it forwards; each forwarded track's msid stream id is its publisher's
 *   peer_id, and a forwarded track whose m-line is no longer sending has been removed;
 * - the client is *polite*: when the server's offer crosses ours (the server ignores ours), it rolls
 *   back, answers, and offers again once stable;
 * - candidates trickle both ways; end-of-candidates is `candidate: null`;
 * - its data channels (`reliable`, `lossy`) are opened with each connection, before its first
 *   offer, and negotiated in the first exchange: our first offer carries them, and so do the
 *   server's offers (we join with `data: true`; Chromium never offers them again once it has
 *   rolled back the offer that carried them first).
 *
 * It is the single source of truth for stream lifecycle: every participant has one MediaStream
 * that the client fills and empties, and the client emits participant/track added/removed events.
 * A UI only reacts to them.
 *
 * Messages are typed by protocol.d.ts, generated from the msgspec Structs that the server decodes
 * with (signaling/tstypes.py): sending a malformed message fails `tsc` (see web/typetests/).
 */

import { watchRelay } from "./relay-watch.js";

/** @typedef {import("./protocol.js").ClientMessage} ClientMessage */
/** @typedef {import("./protocol.js").ServerMessage} ServerMessage */
/** @typedef {import("./protocol.js").Welcome} Welcome */
/** @typedef {import("./protocol.js").GrantInfo} GrantInfo */
/** @typedef {import("./protocol.js").IceCandidate} IceCandidate */
/** @typedef {import("./protocol.js").IceServerInfo} IceServerInfo */
/** @typedef {import("./protocol.js").ErrorCode} ErrorCode */
/** @typedef {import("./protocol.js").LayerChanged} LayerChanged */
/** @typedef {import("./protocol.js").TrackState} TrackState */
/** @typedef {TrackState["source"]} Source */
/** @typedef {import("./protocol.js").SpeakerInfo} SpeakerInfo */
/** @typedef {import("./protocol.js").PublishLayers} PublishLayers */
/** @typedef {import("./protocol.js").GoingAway} GoingAway */
/** @typedef {import("./protocol.js").Rebuild} Rebuild */
/** @typedef {import("./protocol.js").DataSend} DataSend */
/** @typedef {import("./protocol.js").DataReceived} DataReceived */

/**
 * A data message from another participant.
 * @typedef {object} DataMessage
 * @property {string} sender its peer_id
 * @property {Participant | undefined} participant
 * @property {unknown} payload the JSON value it sent
 * @property {string[] | null} to the peer ids it was for (null: the whole room)
 * @property {boolean} reliable which channel it came on
 */
/** @typedef {"l" | "m" | "h"} LayerName */
/** @typedef {LayerName | "auto"} LayerChoice */
/** @typedef {NonNullable<import("./protocol.js").Join["role"]>} Role "participant" or "recorder" */

/**
 * connecting: opening the socket or the first media connection; connected: media flows;
 * reconnecting: the socket or the media connection was lost and the client is joining again;
 * failed: gave up (see the reason); closed: left on purpose.
 * @typedef {"idle" | "connecting" | "connected" | "reconnecting" | "failed" | "closed"} Status
 */

/**
 * @typedef {object} RemoteTrack
 * @property {string} mid the m-line it arrives on (the server reuses the m-line of a track that
 *   ended for a later one, under a new msid)
 * @property {"audio" | "video"} kind
 * @property {MediaStreamTrack} track
 * @property {Participant} participant
 * @property {string | null} trackId its msid track id in the server's SDP (what `set_layer` names)
 * @property {LayerName | null} layer the simulcast layer received (null: no simulcast, or not yet)
 * @property {LayerChoice} requested what setLayer() asked for (`auto` until then)
 * @property {Source} source what its publisher says it is (`track_state`): camera, microphone,
 *   screen, screen_audio
 * @property {boolean} muted whether its publisher muted it (the server forwards nothing then)
 */

/**
 * @typedef {object} StatusChange
 * @property {Status} status
 * @property {string | null} reason why, in words, for reconnecting and failed
 */

/**
 * @typedef {object} ClientEvents
 * @property {StatusChange} status
 * @property {Welcome} welcome a (re)join succeeded
 * @property {Participant} participantjoined
 * @property {{participant: Participant, reason: string}} participantleft
 * @property {Participant} participantupdated its name became known
 * @property {RemoteTrack} trackadded
 * @property {RemoteTrack} trackremoved
 * @property {RemoteTrack} layerchanged the simulcast layer received, or the one asked for, changed
 * @property {RemoteTrack} trackstate its source or muted state changed (`track_state`)
 * @property {SpeakerInfo[]} activespeakers who speaks now, loudest first (ours included)
 * @property {DataMessage} data a data message from another participant
 * @property {{code: ErrorCode, message: string}} servererror
 * @property {GoingAway} goingaway the server is shutting down: the client comes back after
 *   `retry_after` seconds (plus jitter), as a fresh session
 */

/**
 * @typedef {object} InboundStats
 * @property {number} bitrate bits per second since the previous stats() call
 * @property {number} packetsReceived
 * @property {number} packetsLost
 * @property {number} [width]
 * @property {number} [height]
 * @property {number} [fps]
 * @property {number} [framesDecoded]
 * @property {number} [totalSamplesReceived]
 */

/**
 * @typedef {object} ClientStats
 * @property {Map<string, {video?: InboundStats, audio?: InboundStats}>} peers by peer_id
 * @property {{local: string, remote: string, protocol: string, rtt: number | null} | null} pair
 *   candidate types (host, srflx, prflx, relay) of the selected ICE pair
 * @property {{width?: number, height?: number, fps?: number, bitrate: number} | null} outboundVideo
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} url the hub's WebSocket URL (ws://host:port/ws)
 * @property {string} room
 * @property {string | null} [name] shown to the others
 * @property {string | null} [token] a room token, for a server with AUTH_SECRET
 * @property {RTCIceServer[]} [iceServers] overrides the servers sent in `welcome`
 * @property {number} [reconnectAttempts] attempts to get the session back after a loss before
 *   giving up, `failed` (default 10; waits between them as `backoffDelay`)
 * @property {Pick<Console, "debug" | "info" | "warn" | "error">} [logger] default: console
 */

/** One other participant of the room, and the tracks it currently sends us. */
export class Participant {
  /**
   * @param {string} peerId
   * @param {string | null} name
   * @param {Role} [role] "recorder" for a recording bot (it sends nothing)
   */
  constructor(peerId, name, role = "participant") {
    this.peerId = peerId;
    this.name = name;
    this.role = role;
    // Owned by the client: tracks are added and removed here as the server forwards them.
    this.stream = new MediaStream();
    /** @type {Map<string, RemoteTrack>} by mid */
    this.tracks = new Map();
  }

  /**
   * Its shared screen (video) or the screen's sound (audio), while it shares.
   * @param {"audio" | "video"} kind
   */
  screen(kind) {
    const source = kind === "video" ? "screen" : "screen_audio";
    for (const remote of this.tracks.values()) if (remote.source === source) return remote;
    return undefined;
  }

  /**
   * Its camera (video) or microphone (audio): any track of that kind but a screen share's.
   * @param {"audio" | "video"} kind
   */
  track(kind) {
    for (const remote of this.tracks.values()) {
      if (remote.kind === kind && !remote.source.startsWith("screen")) return remote;
    }
    return undefined;
  }
}

/** The WebSocket half: typed JSON messages in and out, one text frame each. */
export class SignalingChannel {
  /**
   * @param {string} url
   * @param {(msg: ServerMessage) => void} onMessage
   * @param {(reason: string) => void} onClose called once, unless close() was called first
   */
  constructor(url, onMessage, onClose) {
    this.ws = new WebSocket(url);
    this._closedByUs = false;
    /** @type {Promise<void>} */
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error(`cannot reach ${url}`)), {
        once: true,
      });
    });
    this.ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      /** @type {ServerMessage} */
      const msg = JSON.parse(event.data);
      onMessage(msg);
    });
    this.ws.addEventListener("close", (event) => {
      if (this._closedByUs) return;
      onClose(event.reason || `signaling socket closed (${event.code})`);
    });
  }

  /** @param {ClientMessage} msg */
  send(msg) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  close() {
    this._closedByUs = true;
    this.ws.close(1000);
  }
}

/**
 * The ICE configuration the server asks for: its servers (unless overridden), relay only for
 * `turn-only`, no TURN for `stun-only`; max-bundle always (as the server does).
 * @param {Welcome} welcome
 * @param {RTCIceServer[] | undefined} override
 * @returns {RTCConfiguration}
 */
export function rtcConfiguration(welcome, override) {
  /** @type {RTCIceServer[]} */
  let servers =
    override ??
    welcome.ice_servers.map((s) => {
      /** @type {RTCIceServer} */
      const server = { urls: s.urls };
      if (s.username != null) server.username = s.username;
      if (s.credential != null) server.credential = s.credential;
      return server;
    });
  if (welcome.ice_mode === "stun-only") {
    servers = servers.filter((s) => [s.urls].flat().every((u) => u.startsWith("stun")));
  }
  return {
    iceServers: servers,
    iceTransportPolicy: welcome.ice_mode === "turn-only" ? "relay" : "all",
    bundlePolicy: "max-bundle",
    rtcpMuxPolicy: "require",
  };
}

/**
 * RTP header extensions the server negotiates; it drops the others from its answers. It takes
 * transport-cc on what we publish (its feedback lets our bandwidth estimate ramp up in a second).
 */
const SERVER_EXTENSIONS = new Set([
  "urn:ietf:params:rtp-hdrext:sdes:mid",
  "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
  "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
  "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
  // Simulcast: which layer (RID) each RTP stream is, and each retransmission stream.
  "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
  "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
]);

/**
 * Camera video as three encodings when the server receives simulcast (`welcome.simulcast`):
 * RIDs l, m, h, lowest first, at a quarter, half and full size (320x180, 640x360, 1280x720 of a
 * 720p camera). Bitrates as LiveKit's defaults for those sizes, under the server's 2.5 Mbps cap.
 * @type {RTCRtpEncodingParameters[]}
 */
export const SIMULCAST_ENCODINGS = [
  { rid: "l", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "m", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "h", scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * The msid track id of each m-line of a description, by mid (what the server calls a track).
 * @param {string | undefined} sdp
 * @returns {Map<string, string>}
 */
function msidTrackIds(sdp) {
  /** @type {Map<string, string>} */
  const ids = new Map();
  for (const section of (sdp ?? "").split(/\r?\nm=/).slice(1)) {
    const mid = section.match(/^a=mid:(\S+)/m)?.[1];
    const track = section.match(/^a=msid:\S+ (\S+)/m)?.[1];
    if (mid && track) ids.set(mid, track);
  }
  return ids;
}

/**
 * The msid stream id of each m-line of a server description, by mid: whose track it carries.
 * @param {string | undefined} sdp
 * @returns {Map<string, string>}
 */
function msidStreamIds(sdp) {
  /** @type {Map<string, string>} */
  const ids = new Map();
  for (const section of (sdp ?? "").split(/\r?\nm=/).slice(1)) {
    const mid = section.match(/^a=mid:(\S+)/m)?.[1];
    const stream = section.match(/^a=msid:(\S+) \S+/m)?.[1];
    if (mid && stream) ids.set(mid, stream);
  }
  return ids;
}

/**
 * Offer only the header extensions the server uses. Chromium keeps the extension ids of a
 * rolled-back offer for the whole bundle: after glare on a running connection, an id our offer
 * gave to an extension the server does not use (video-orientation, say) can be the id the
 * server's offer gives to another one, and Chromium then refuses the server's offer ("RTP
 * extension ID reassignment not supported"). With fewer extensions, both sides pick the same ids.
 * @param {RTCRtpTransceiver} transceiver
 */
function offerOnlyServerExtensions(transceiver) {
  /**
   * @typedef {{uri: string, direction: string}} Extension
   * @type {{getHeaderExtensionsToNegotiate?: () => Extension[],
   *   setHeaderExtensionsToNegotiate?: (extensions: Extension[]) => void}}
   */
  const api = /** @type {any} */ (transceiver);
  if (!api.getHeaderExtensionsToNegotiate || !api.setHeaderExtensionsToNegotiate) return;
  api.setHeaderExtensionsToNegotiate(
    api.getHeaderExtensionsToNegotiate().map((e) => ({
      uri: e.uri,
      direction: SERVER_EXTENSIONS.has(e.uri) ? e.direction : "stopped",
    })),
  );
}

/**
 * `pc.getStats()`, or null if it has not settled within `ms`: Firefox's (153 ESR) never settles
 * when the connection is closed while it runs (which glare on the first exchange does).
 * @param {RTCPeerConnection} pc
 * @param {number} [ms]
 * @returns {Promise<RTCStatsReport | null>}
 */
function statsOrNull(pc, ms = 2000) {
  /** @type {Promise<null>} */
  const late = new Promise((resolve) => setTimeout(() => resolve(null), ms));
  return Promise.race([pc.getStats(), late]);
}

/**
 * Milliseconds to wait before reconnect attempt `attempt` (1 for the first): exponential, capped,
 * less up to half of it at random so that clients that lost the same server do not all come back
 * in the same instant. The same delays as the Python client (sfu/backoff.py).
 * @param {number} attempt
 * @param {number} [rand] in [0, 1)
 */
export function backoffDelay(attempt, rand = Math.random()) {
  const base = Math.min(5000, 250 * 2 ** Math.max(0, attempt - 1));
  return base * (1 - 0.5 * rand);
}

/** After a `rate_limited` error, what may have been dropped is sent again this much later. */
const RATE_LIMIT_RESYNC_MS = 1000;

/** @param {string | undefined} sdp */
function iceUfrag(sdp) {
  return sdp?.match(/^a=ice-ufrag:(\S+)/m)?.[1];
}

/**
 * Errors after which the server closes the socket and a rejoin would only be refused again, or
 * take the place of the session that replaced this one: the client fails instead of retrying.
 * @type {Set<ErrorCode>}
 */
const ENDS_SESSION = new Set([
  "token_required",
  "token_invalid",
  "token_expired",
  "token_not_yet_valid",
  "token_wrong_room",
  "replaced",
  "removed",
  "room_closed",
]);

/**
 * ICE restart when the media connection goes `disconnected`: after this grace (it may come back
 * by itself), then up to ICE_RESTART_ATTEMPTS times, the wait doubling. The server restarts ICE
 * itself after 2.5 s of silence from us; this covers what only the browser sees first.
 */
const ICE_RESTART_GRACE_MS = 1000;
const ICE_RESTART_ATTEMPTS = 3;

/**
 * A room session: join, publish, receive everyone else, and recover from losses by itself.
 *
 * Status: `connecting -> connected -> reconnecting -> connected | failed` (`closed` after
 * leave()), each change a `status` event. A lost socket is opened again with backoff and the
 * session resumed with `welcome.resume_token` (same peer_id, same peer connection, media
 * flowing meanwhile if the path works); a server that no longer knows the session (restarted,
 * or the grace period passed) gets a fresh join, on a new peer connection, with our tracks
 * published again. After `reconnectAttempts` failed attempts: `failed`, with the reason.
 */
export class SfuClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    this.url = options.url;
    this.room = options.room;
    this.name = options.name ?? null;
    this.token = options.token ?? null;
    /** @type {GrantInfo | null} what the room token allows (`welcome`); null: everything */
    this.grants = null;
    this.log = options.logger ?? console;
    this._iceServers = options.iceServers;
    this._reconnectAttempts = options.reconnectAttempts ?? 10;
    /** @type {Status} */
    this.status = "idle";
    /** @type {string | null} */
    this.statusReason = null;
    /** @type {string | null} */
    this.peerId = null;
    /** @type {Map<string, Participant>} by peer_id */
    this.participants = new Map();
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCConfiguration | null} from the latest `welcome` (and `ice_servers`) */
    this._configuration = null;
    /** @type {Welcome | null} */
    this._welcome = null;
    /** Whether the server receives simulcast (the latest `welcome` says). */
    this.simulcast = false;
    /**
     * Dynacast: the simulcast layers the server last said to send, by our track id.
     * @type {Map<string, string[]>}
     */
    this.publishedLayers = new Map();
    /** setParameters calls for dynacast, one after the other. */
    this._layerUpdates = Promise.resolve();
    /** Glare seen: offers of ours rolled back to answer the server's. */
    this.rollbacks = 0;
    /** ICE restarts we began (`pc.restartIce()`), after a `disconnected` connection. */
    this.iceRestarts = 0;
    /** peer connections the server replaced, the session kept (`rebuild`) */
    this.rebuilds = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._iceRestartTimer = undefined;
    /** Offer/answer exchanges completed on the current connection. */
    this.negotiations = 0;
    /** @type {Map<keyof ClientEvents, Set<(detail: any) => void>>} */
    this._listeners = new Map();
    /** @type {MediaStreamTrack[]} what we publish, kept across rejoins */
    this._published = [];
    /** @type {MediaStream} carries our tracks' msid, so that logs and SDP group them */
    this._localStream = new MediaStream();
    /** @type {SignalingChannel | null} */
    this._channel = null;
    // One signaling step at a time, in arrival order (as the server does with ours).
    /** @type {Promise<void>} */
    this._queue = Promise.resolve();
    /** @type {(IceCandidate | null)[]} server candidates waiting for a remote description */
    this._remoteCandidates = [];
    /** @type {RTCIceCandidateInit[]} ours, held while our offer is unanswered */
    this._heldCandidates = [];
    this._endOfCandidatesHeld = false;
    /** @type {Map<string, RemoteTrack>} by mid */
    this._remote = new Map();
    /** @type {Map<string, string | null>} mid -> the msid track id it was announced with: an
     * m-line the server reuses for another track announces that one */
    this._seenMids = new Map();
    /** @type {Map<string, string>} mid -> peer_id, from the msid of each `track` event */
    this._midOwner = new Map();
    /** @type {Map<string, LayerName>} msid track id -> the layer the server last said */
    this._layers = new Map();
    /** @type {Map<string, TrackState>} msid track id -> what the server last said of it */
    this.trackStates = new Map();
    /** @type {SpeakerInfo[]} who speaks now, loudest first (`active_speakers`) */
    this.activeSpeakers = [];
    /** @type {Record<"reliable" | "lossy", RTCDataChannel> | null} on the current connection */
    this._channels = null;
    /** @type {Map<MediaStreamTrack, {source: Source, muted: boolean}>} ours, said again on rejoin */
    this._described = new Map();
    /** @type {Map<MediaStreamTrack, string>} ours: the msid track id the server knows each by */
    this._trackIds = new Map();
    /** @type {Map<string, {bytes: number, at: number}>} for bitrates between stats() calls */
    this._lastBytes = new Map();
    /** Reconnect attempts in the current outage. */
    this._attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._resyncTimer = undefined;
    /** @type {string | null} from the latest `welcome` */
    this._resumeToken = null;
    /** @type {number | null} when (performance.now()) we went `reconnecting`, until connected */
    this._lostAt = null;
    /** how the latest welcome came: the session resumed, or a fresh one */
    this._lastJoin = "joined afresh";
    /** @type {number | null} how long the latest recovery took, in seconds */
    this.lastRecoverySeconds = null;
    /** @type {number | null} the server's `going_away` hint (ms), for the next attempt */
    this._retryAfterMs = null;
    /** @type {string | null} our latest answer, until the server's next offer */
    this._lastAnswer = null;
    /** Sockets opened again after a loss; of those, sessions resumed and fresh rejoins. */
    this.reconnects = 0;
    this.resumes = 0;
    this.rejoins = 0;
  }

  // --- events ---------------------------------------------------------------------------

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(detail: ClientEvents[K]) => void} listener
   * @returns {() => void} removes the listener
   */
  on(type, listener) {
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => void set.delete(listener);
  }

  /**
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {ClientEvents[K]} detail
   */
  _emit(type, detail) {
    for (const listener of this._listeners.get(type) ?? []) {
      try {
        listener(detail);
      } catch (err) {
        this.log.error(`aiosfu: a ${type} listener failed`, err);
      }
    }
  }

  /**
   * @param {Status} status
   * @param {string | null} [reason]
   */
  _setStatus(status, reason = null) {
    if (status === this.status && reason === this.statusReason) return;
    this.log.debug(`aiosfu: ${this.status} -> ${status}${reason ? ` (${reason})` : ""}`);
    if (status === "reconnecting" && this._lostAt === null) this._lostAt = performance.now();
    if (status === "connected" && this._lostAt !== null) {
      // The one line per recovery: how long it took, and how.
      const seconds = ((performance.now() - this._lostAt) / 1000).toFixed(2);
      this.log.info(`aiosfu: recovered after ${seconds}s (${this._lastJoin})`);
      this.lastRecoverySeconds = Number(seconds);
      this._lostAt = null;
    }
    if (status === "failed" || status === "closed") this._lostAt = null;
    this.status = status;
    this.statusReason = reason;
    this._emit("status", { status, reason });
  }

  // --- API ------------------------------------------------------------------------------

  /** Whether the room token lets us publish (always, on a server without room tokens). */
  get mayPublish() {
    return this.grants === null || this.grants.publish;
  }

  /**
   * Join the room; resolves with `welcome`. Rejects (status `failed`) if the first attempt fails;
   * after that, losses are retried on their own (status `reconnecting`).
   * @returns {Promise<Welcome>}
   */
  join() {
    clearTimeout(this._retryTimer);
    clearTimeout(this._resyncTimer);
    this._attempt = 0; // a new session: nothing of an earlier one's outages counts
    this._resumeToken = null;
    this._retryAfterMs = null;
    this._setStatus("connecting");
    return this._connect(null);
  }

  /**
   * Publish a local track; the server forwards it to everyone else, telling them its source.
   * Published tracks are published again after a rejoin.
   * @param {MediaStreamTrack} track
   * @param {Source} [source] camera or microphone (by kind), unless said otherwise
   */
  publish(track, source = track.kind === "audio" ? "microphone" : "camera") {
    if (this._published.includes(track) || !this.mayPublish) return;
    this._published.push(track);
    this._localStream.addTrack(track);
    this._described.set(track, { source, muted: false });
    if (this.pc) this._addSender(this.pc, track);
  }

  /**
   * Stop publishing a track (a screen share that ended, say): its m-line goes inactive in our
   * next offer, and the server tells the others it is gone. Its m-line is not used again.
   * @param {MediaStreamTrack} track
   */
  unpublish(track) {
    const index = this._published.indexOf(track);
    if (index < 0) return;
    this._published.splice(index, 1);
    this._localStream.removeTrack(track);
    this._described.delete(track);
    this._trackIds.delete(track);
    const transceiver = this.pc?.getTransceivers().find((t) => t.sender.track === track);
    if (!transceiver) return;
    transceiver.direction = "inactive"; // negotiationneeded: we offer it so
    void transceiver.sender.replaceTrack(null);
  }

  /**
   * Mute or unmute a published track: the server stops forwarding it (and tells the others),
   * then forwards again from a keyframe. The track is also disabled here, so that nothing of
   * it leaves this page meanwhile (black frames and silence, which the server drops).
   * @param {MediaStreamTrack} track
   * @param {boolean} muted
   */
  mute(track, muted) {
    track.enabled = !muted;
    const described = this._described.get(track);
    if (!described || described.muted === muted) return;
    described.muted = muted;
    // Not offered yet: the state goes with its track_info, before the offer.
    const id = this._trackIds.get(track);
    if (id) this._send({ type: "mute", track: id, muted });
  }

  /**
   * Send a JSON value to everyone else in the room, or to the peer ids `to`, on the reliable
   * data channel (ordered, retransmitted) or the lossy one (unordered, never resent). Returns
   * false when the channel is not open (not connected yet, or reconnecting): nothing is sent.
   * The server refuses what it may not relay with a `servererror` (data_too_large,
   * data_rate_limited, data_not_allowed).
   * @param {unknown} payload
   * @param {{to?: string[] | null, reliable?: boolean}} [options]
   * @returns {boolean}
   */
  sendData(payload, { to = null, reliable = true } = {}) {
    const channel = this._channels?.[reliable ? "reliable" : "lossy"];
    if (!channel || channel.readyState !== "open") return false;
    /** @type {DataSend} */
    const message = { payload };
    if (to !== null) message.to = to;
    channel.send(JSON.stringify(message));
    return true;
  }

  /**
   * Our data channels on a new connection, before its first offer or answer: whichever comes
   * first negotiates them (docs/protocol.md, "Data channels").
   * @param {RTCPeerConnection} pc
   */
  _openDataChannels(pc) {
    const channels = {
      reliable: pc.createDataChannel("reliable"),
      lossy: pc.createDataChannel("lossy", { ordered: false, maxRetransmits: 0 }),
    };
    this._channels = channels;
    for (const [kind, channel] of Object.entries(channels)) {
      channel.addEventListener("message", (event) => {
        if (pc !== this.pc || typeof event.data !== "string") return;
        /** @type {DataReceived} */
        const received = JSON.parse(event.data);
        this._emit("data", {
          sender: received.sender,
          participant: this.participants.get(received.sender),
          payload: received.payload,
          to: received.to ?? null,
          reliable: kind === "reliable",
        });
      });
    }
  }

  /**
   * Tell the server what each track we publish is, before the offer that carries it (sent
   * next): named by its msid track id in that offer, which Chromium does not always take from
   * the MediaStreamTrack's id.
   * @param {RTCPeerConnection} pc
   */
  _describeTracks(pc) {
    const ids = msidTrackIds(pc.localDescription?.sdp);
    for (const transceiver of pc.getTransceivers()) {
      const track = transceiver.sender.track;
      const described = track && this._described.get(track);
      const id = transceiver.mid === null ? undefined : ids.get(transceiver.mid);
      if (!track || !described || !id || this._trackIds.get(track) === id) continue;
      this._trackIds.set(track, id);
      this._send({ type: "track_info", track: id, ...described });
    }
  }

  /**
   * Choose the simulcast layer received on a remote video track: `l`, `m`, `h`, or `auto` (the
   * server's choice, the default). The server answers with the layer it forwards (`layerchanged`
   * at once, and again once it switched, on a keyframe of the new layer).
   * @param {RemoteTrack} remote
   * @param {LayerChoice} layer
   */
  setLayer(remote, layer) {
    if (remote.trackId === null) return;
    remote.requested = layer;
    this._send({ type: "set_layer", track: remote.trackId, layer });
    this._emit("layerchanged", remote);
  }

  /** Leave the room and close everything; the client can join() again afterwards. */
  leave() {
    if (this._channel) this._channel.send({ type: "leave" });
    this._teardown();
    this._setStatus("closed");
  }

  /**
   * Media statistics for a small overlay: per participant, per kind, plus the selected ICE pair.
   * @returns {Promise<ClientStats>}
   */
  async stats() {
    /** @type {ClientStats} */
    const result = { peers: new Map(), pair: null, outboundVideo: null };
    const pc = this.pc;
    if (!pc) return result;
    const report = await statsOrNull(pc);
    if (!report) return result;
    /** @type {Map<string, any>} */
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    const now = performance.now();
    /** @param {string} id @param {number} bytes */
    const bitrate = (id, bytes) => {
      const last = this._lastBytes.get(id);
      this._lastBytes.set(id, { bytes, at: now });
      if (!last || now <= last.at) return 0;
      return Math.round(((bytes - last.bytes) * 8000) / (now - last.at));
    };
    for (const s of byId.values()) {
      if (s.type === "inbound-rtp") {
        const remote = this._remote.get(s.mid);
        if (!remote || remote.source.startsWith("screen")) continue; // a person's media only
        const peerId = remote.participant.peerId;
        const entry = result.peers.get(peerId) ?? {};
        /** @type {InboundStats} */
        const stats = {
          bitrate: bitrate(s.id, s.bytesReceived ?? 0),
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
        };
        if (s.kind === "video") {
          stats.width = s.frameWidth;
          stats.height = s.frameHeight;
          stats.fps = s.framesPerSecond;
          stats.framesDecoded = s.framesDecoded ?? 0;
          entry.video = stats;
        } else {
          stats.totalSamplesReceived = s.totalSamplesReceived ?? 0;
          entry.audio = stats;
        }
        result.peers.set(peerId, entry);
      } else if (s.type === "outbound-rtp" && s.kind === "video") {
        result.outboundVideo = {
          width: s.frameWidth,
          height: s.frameHeight,
          fps: s.framesPerSecond,
          bitrate: bitrate(s.id, s.bytesSent ?? 0),
        };
      } else if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = byId.get(s.selectedCandidatePairId);
        const local = pair && byId.get(pair.localCandidateId);
        const remote = pair && byId.get(pair.remoteCandidateId);
        if (local && remote) {
          result.pair = {
            local: local.candidateType,
            remote: remote.candidateType,
            protocol: local.protocol,
            rtt: pair.currentRoundTripTime ?? null,
          };
        }
      }
    }
    return result;
  }

  // --- connection -------------------------------------------------------------------------

  /**
   * Open a socket and send `join` (with `resume` when given); resolves with the `welcome`.
   * @param {string | null} resume
   * @returns {Promise<Welcome>}
   */
  _connect(resume) {
    return new Promise((resolve, reject) => {
      let welcomed = false;
      const channel = new SignalingChannel(
        this.url,
        (msg) => {
          if (channel !== this._channel) return;
          if (msg.type === "error" && ENDS_SESSION.has(msg.code)) {
            // At once, not in turn: the socket closes next, and this is no loss to retry.
            if (!welcomed) reject(new Error(msg.message));
            this._end(msg.code, msg.message);
            return;
          }
          if (msg.type === "going_away") {
            // At once, not in turn: the socket may close before the queue gets to it.
            this._onGoingAway(msg);
            return;
          }
          if (msg.type === "welcome" && !welcomed) {
            welcomed = true;
            resolve(msg);
          }
          this._enqueue(() => this._handle(msg));
        },
        (reason) => {
          if (channel !== this._channel) return;
          this._channel = null;
          if (!welcomed) reject(new Error(reason));
          this._socketLost(reason);
        },
      );
      this._channel = channel;
      channel.opened.then(
        () => {
          if (channel !== this._channel) return;
          channel.send({
            type: "join",
            room: this.room,
            name: this.name,
            token: this.token,
            resume,
            data: true, // we open data channels: the server's offers carry their m-line too
          });
        },
        (/** @type {Error} */ err) => {
          if (channel !== this._channel) return;
          this._channel = null;
          reject(err);
          this._socketLost(err.message);
        },
      );
    });
  }

  /**
   * The server ended this session, or refused its token: failed, for good (see ENDS_SESSION).
   * @param {ErrorCode} code
   * @param {string} message
   */
  _end(code, message) {
    this.log.warn(`aiosfu: the server ended the session: ${code}: ${message}`);
    this._emit("servererror", { code, message });
    this._teardown();
    this._setStatus("failed", message);
  }

  /**
   * The socket is gone (or could not be opened): keep the session and its peer connection, and
   * try again after a backoff, or give up.
   * @param {string} reason
   */
  _socketLost(reason) {
    if (this.status === "closed" || this.status === "failed") return;
    this._channel?.close();
    this._channel = null;
    if (this.status === "connecting" && !this.peerId) {
      this._fail(reason); // the very first join failed: say so rather than retry in silence
      return;
    }
    if (this._attempt >= this._reconnectAttempts) {
      this._fail(`${reason}; gave up after ${this._attempt} attempts`);
      return;
    }
    this._attempt += 1;
    this._setStatus("reconnecting", reason);
    let delay = backoffDelay(this._attempt);
    if (this._retryAfterMs !== null) {
      // The server said when to come back (going_away): no sooner, spread like the backoff.
      delay = Math.max(delay, this._retryAfterMs * (1 + 0.5 * Math.random()));
      this._retryAfterMs = null;
    }
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      this._retryTimer = undefined;
      this.reconnects += 1;
      this._connect(this._resumeToken).catch(() => {
        /* _socketLost() has scheduled the next attempt, or given up */
      });
    }, delay);
  }

  /**
   * The server is shutting down: media goes on until it closes the socket; then come back no
   * sooner than its hint, as a fresh session (a restarted server keeps none to resume).
   * @param {GoingAway} msg
   */
  _onGoingAway(msg) {
    this.log.info(`aiosfu: the server is going away (${msg.reason}): back in ${msg.retry_after}s`);
    this._retryAfterMs = msg.retry_after * 1000;
    this._resumeToken = null;
    this._emit("goingaway", msg);
  }

  /**
   * Give up: out of the room (nobody waits for media that cannot come), everything closed.
   * @param {string} reason
   */
  _fail(reason) {
    this._channel?.send({ type: "leave" });
    this._teardown();
    this._setStatus("failed", reason);
  }

  /**
   * Our media session cannot go on (the server took us out, or negotiation broke): a fresh
   * session on the same socket, with a new peer connection and our tracks published again.
   * @param {string} reason
   * @param {{leave: boolean}} how whether the server still has us in the room
   */
  _startOver(reason, how) {
    const channel = this._channel;
    if (!channel || this.status === "closed" || this.status === "failed") return;
    this._setStatus("reconnecting", reason);
    if (how.leave) channel.send({ type: "leave" });
    this._resetMedia();
    this._resumeToken = null;
    const { room, name, token } = this;
    channel.send({ type: "join", room, name, token, data: true });
  }

  /** Close the socket and the peer connection, end every remote track and participant. */
  _teardown() {
    clearTimeout(this._retryTimer);
    clearTimeout(this._resyncTimer);
    this._retryTimer = this._resyncTimer = undefined;
    const channel = this._channel;
    this._channel = null;
    channel?.close();
    this._resetMedia();
    this._resumeToken = null;
  }

  /** Drop the peer connection and everything received on it; the socket stays. */
  _resetMedia() {
    for (const participant of [...this.participants.values()]) {
      this._removeParticipant(participant, "disconnected");
    }
    this._dropConnection();
    this._queue = Promise.resolve();
    this._layers.clear();
    this.trackStates.clear();
    this.activeSpeakers = [];
    this._trackIds.clear(); // a new connection names our tracks anew
    this.peerId = null;
  }

  /** Close the peer connection, ending what it received; the session and participants stay. */
  _dropConnection() {
    const pc = this.pc;
    this.pc = null;
    pc?.close();
    clearTimeout(this._iceRestartTimer);
    this._iceRestartTimer = undefined;
    for (const remote of [...this._remote.values()]) this._removeTrack(remote);
    this._remoteCandidates = [];
    this._heldCandidates = [];
    this._endOfCandidatesHeld = false;
    this._seenMids.clear();
    this._midOwner.clear();
    this._channels = null; // they were the connection's
    this._lastBytes.clear();
    this._lastAnswer = null;
  }

  /** @param {() => Promise<void>} step */
  _enqueue(step) {
    const channel = this._channel;
    this._queue = this._queue.then(async () => {
      if (channel !== this._channel) return; // a step of a connection that is gone
      try {
        await step();
      } catch (err) {
        this.log.error("aiosfu: signaling step failed", err);
        // A description that cannot be applied leaves both sides waiting for ever: start over
        // on a new connection rather than stay half-negotiated.
        const message = err instanceof Error ? err.message : String(err);
        this._startOver(`negotiation failed: ${message}`, { leave: true });
      }
    });
  }

  /** @param {ClientMessage} msg */
  _send(msg) {
    this._channel?.send(msg);
  }

  // --- server messages ----------------------------------------------------------------------

  /** @param {ServerMessage} msg */
  async _handle(msg) {
    switch (msg.type) {
      case "welcome":
        await this._onWelcome(msg);
        break;
      case "participant_joined":
        this._addParticipant(msg.peer_id, msg.name, msg.role);
        break;
      case "participant_left": {
        const participant = this.participants.get(msg.peer_id);
        if (participant) this._removeParticipant(participant, msg.reason);
        break;
      }
      case "offer":
        await this._onServerOffer(msg.sdp);
        break;
      case "answer":
        await this._onServerAnswer(msg.sdp);
        break;
      case "candidate":
        await this._onServerCandidate(msg.candidate);
        break;
      case "error":
        this.log.warn(`aiosfu: server error ${msg.code}: ${msg.message}`);
        this._emit("servererror", { code: msg.code, message: msg.message });
        if (msg.code === "media_failed") {
          this._startOver(`media failed: ${msg.message}`, { leave: false });
        } else if (msg.code === "resume_failed") {
          // The server no longer knows our session (it restarted, or we were away too long).
          this._startOver("the session could not be resumed", { leave: false });
        } else if (msg.code === "rate_limited" && this._resyncTimer === undefined) {
          // What we sent meanwhile may have been dropped: negotiation would wait for ever.
          this._resyncTimer = setTimeout(() => {
            this._resyncTimer = undefined;
            this._enqueue(() => this._resync({ answerToo: true }));
          }, RATE_LIMIT_RESYNC_MS);
        }
        break;
      case "layer":
        this._onLayer(msg);
        break;
      case "track_state":
        this._onTrackState(msg);
        break;
      case "track_unpublished":
        this.trackStates.delete(msg.track);
        break;
      case "active_speakers":
        this.activeSpeakers = msg.speakers;
        this._emit("activespeakers", msg.speakers);
        break;
      case "publish_layers":
        this._onPublishLayers(msg);
        break;
      case "pong":
        break;
      case "ice_servers":
        this._onIceServers(msg.ice_servers);
        break;
      case "rebuild":
        this._onRebuild(msg);
        break;
    }
  }

  /** @param {LayerChanged} msg */
  _onLayer(msg) {
    this._layers.set(msg.track, msg.layer); // for a track whose m-line is not synced yet
    for (const remote of this._remote.values()) {
      if (remote.trackId !== msg.track) continue;
      remote.layer = msg.layer;
      this._emit("layerchanged", remote);
    }
  }

  /** @param {TrackState} state */
  _onTrackState(state) {
    this.trackStates.set(state.track, state);
    for (const remote of this._remote.values()) {
      if (remote.trackId !== state.track || remote.participant.peerId !== state.peer_id) continue;
      remote.source = state.source;
      remote.muted = state.muted;
      this._emit("trackstate", remote);
    }
  }

  /**
   * Dynacast: send only the simulcast layers someone receives; pause the others' encodings
   * (`active: false`), resume them when listed again. One setParameters at a time per page.
   * @param {PublishLayers} msg
   */
  _onPublishLayers(msg) {
    this.publishedLayers.set(msg.track, msg.layers);
    this._layerUpdates = this._layerUpdates.then(async () => {
      const sender = this.pc?.getSenders().find((s) => s.track?.id === msg.track);
      if (!sender) return;
      const params = sender.getParameters();
      if (!params.encodings || params.encodings.length < 2) return;
      const wanted = this.publishedLayers.get(msg.track) ?? [];
      let changed = false;
      for (const encoding of params.encodings) {
        const active = encoding.rid === undefined || wanted.some((rid) => rid === encoding.rid);
        if (encoding.active !== active) {
          encoding.active = active;
          changed = true;
        }
      }
      if (!changed) return;
      try {
        await sender.setParameters(params);
      } catch (err) {
        this.log.warn("aiosfu: cannot pause or resume simulcast layers", err);
      }
    });
  }

  /** @param {Welcome} welcome */
  async _onWelcome(welcome) {
    this._resumeToken = welcome.resume_token ?? null;
    const resumed = welcome.resumed === true && this.pc !== null && welcome.peer_id === this.peerId;
    this._lastJoin = resumed ? "resumed" : "joined afresh";
    if (resumed) {
      await this._onResumed(welcome);
      return;
    }
    if (this.pc) {
      this.rejoins += 1; // a fresh session after a lost one: start media over
      this._resetMedia();
    }
    this.peerId = welcome.peer_id;
    this.simulcast = welcome.simulcast === true;
    this.negotiations = 0;
    this.grants = welcome.grants ?? null;
    if (!this.mayPublish) this._published = []; // the server would refuse them
    this._emit("welcome", welcome);
    for (const p of welcome.participants) this._addParticipant(p.peer_id, p.name, p.role);
    this._welcome = welcome;
    this._configuration = rtcConfiguration(welcome, this._iceServers);
    const pc = this._newPeerConnection();
    for (const track of this._published) this._addSender(pc, track);
    // Nothing to publish and nothing to receive yet is a working session too.
    if (this._published.length === 0 && this.status !== "connected") this._connected();
  }

  /**
   * The same session, back on a new socket: reconcile who is in the room, and send again an
   * offer of ours the server may never have got (the server does the same with its own).
   * @param {Welcome} welcome
   */
  async _onResumed(welcome) {
    this.resumes += 1;
    const present = new Set(welcome.participants.map((p) => p.peer_id));
    for (const participant of [...this.participants.values()]) {
      if (!present.has(participant.peerId)) this._removeParticipant(participant, "disconnected");
    }
    for (const p of welcome.participants) this._addParticipant(p.peer_id, p.name);
    this._emit("welcome", welcome);
    await this._resync({ answerToo: false });
    const pc = this.pc;
    if (pc && (pc.connectionState === "connected" || pc.getTransceivers().length === 0)) {
      this._connected();
    }
  }

  /**
   * Send again what the server may not have got: our pending offer (after a resume or a rate
   * limit) or, after a rate limit, our latest answer; each with end-of-candidates.
   * @param {{answerToo: boolean}} what
   */
  async _resync(what) {
    const pc = this.pc;
    if (!pc) return;
    if (pc.signalingState === "have-local-offer" && pc.localDescription) {
      this._send({ type: "offer", sdp: pc.localDescription.sdp });
      if (pc.iceGatheringState === "complete") this._send({ type: "candidate", candidate: null });
    } else if (what.answerToo && pc.signalingState === "stable" && this._lastAnswer) {
      this._send({ type: "answer", sdp: this._lastAnswer });
      this._send({ type: "candidate", candidate: null });
    }
  }

  _connected() {
    this._attempt = 0;
    this._setStatus("connected");
  }

  /**
   * Fresh TURN credentials, before those of `welcome` expire: the running allocation keeps
   * going; the next gathering (an ICE restart) and the next connection use these.
   * @param {IceServerInfo[]} servers
   */
  _onIceServers(servers) {
    if (!this._welcome) return;
    this._configuration = rtcConfiguration(
      { ...this._welcome, ice_servers: servers },
      this._iceServers,
    );
    this.pc?.setConfiguration(this._configuration);
  }

  /**
   * The server replaces our peer connection, keeping the session (it could not restart ICE in
   * place): a new one with the ICE servers it gives, our tracks on it again (same track ids:
   * our publications and their subscribers carry on). What we received ends and comes back on
   * the new connection; the participants stay.
   * @param {Rebuild} msg
   */
  _onRebuild(msg) {
    if (!this.pc || !this._welcome) return;
    this.log.warn(`aiosfu: the server rebuilds our media connection: ${msg.reason}`);
    this.rebuilds += 1;
    this._lastJoin = "rebuilt";
    this._setStatus("reconnecting", `media connection rebuilt: ${msg.reason}`);
    this._dropConnection();
    this._configuration = rtcConfiguration(
      { ...this._welcome, ice_servers: msg.ice_servers },
      this._iceServers,
    );
    const pc = this._newPeerConnection();
    for (const track of this._published) this._addSender(pc, track);
  }

  /** A new RTCPeerConnection, now `this.pc`, with our listeners and no sender yet. */
  _newPeerConnection() {
    const pc = new RTCPeerConnection(this._configuration ?? undefined);
    this.pc = pc;
    this._openDataChannels(pc);
    if (this._configuration?.iceTransportPolicy === "relay") {
      // A failed TURN allocation leaves a relay-only connection with no candidate, "new" for
      // ever: end failed, naming TURN. Not retried: every join gets fresh credentials, so a
      // refusal is the deployment's (secret, URL, firewall), and rejoining cannot fix it.
      watchRelay(pc, (reason) => {
        if (pc === this.pc) this._fail(reason);
      });
    }
    pc.addEventListener("negotiationneeded", () => {
      this._enqueue(() => this._offer(pc));
    });
    pc.addEventListener("icecandidate", (event) => this._onLocalCandidate(pc, event.candidate));
    pc.addEventListener("track", (event) => {
      const mid = event.transceiver.mid;
      const owner = event.streams[0]?.id;
      if (mid !== null && owner) this._midOwner.set(mid, owner);
    });
    pc.addEventListener("connectionstatechange", () => this._onConnectionState(pc));
    return pc;
  }

  /**
   * Once per connection: a track published while glare's fresh connection answers is added by
   * publish() and again by the answer's loop (seen: one camera published twice).
   * @param {RTCPeerConnection} pc
   * @param {MediaStreamTrack} track
   */
  _addSender(pc, track) {
    if (pc.getSenders().some((sender) => sender.track === track)) return;
    /** @type {RTCRtpTransceiverInit} */
    const init = { direction: "sendonly", streams: [this._localStream] };
    // A camera only: a screen's small print would be unreadable at a quarter of its size.
    const camera = this._described.get(track)?.source === "camera";
    if (this.simulcast && track.kind === "video" && camera) init.sendEncodings = SIMULCAST_ENCODINGS;
    const transceiver = pc.addTransceiver(track, init);
    offerOnlyServerExtensions(transceiver);
  }

  /** @param {RTCPeerConnection} pc */
  _onConnectionState(pc) {
    if (pc !== this.pc) return;
    switch (pc.connectionState) {
      case "connected":
        if (this._channel && !this._retryTimer) this._connected();
        break;
      case "disconnected":
        // ICE may come back by itself; "failed" is the point of no return.
        this._setStatus("reconnecting", "media connection interrupted");
        this._restartIceSoon(pc);
        break;
      case "failed":
        this._startOver("media connection failed", { leave: true });
        break;
    }
  }

  /**
   * Restart ICE while the connection stays `disconnected` (bounded, with backoff): new
   * credentials in an offer (negotiationneeded); the server restarts in place, keeping DTLS,
   * tracks and subscriptions.
   * @param {RTCPeerConnection} pc
   */
  _restartIceSoon(pc) {
    if (this._iceRestartTimer !== undefined) return;
    let attempt = 0;
    const tick = () => {
      this._iceRestartTimer = undefined;
      if (pc !== this.pc || pc.connectionState !== "disconnected") return;
      if (attempt >= ICE_RESTART_ATTEMPTS) return;
      attempt += 1;
      this.iceRestarts += 1;
      this.log.info(`aiosfu: media connection disconnected: restarting ICE (${attempt})`);
      pc.restartIce();
      this._iceRestartTimer = setTimeout(tick, ICE_RESTART_GRACE_MS * 2 ** attempt);
    };
    this._iceRestartTimer = setTimeout(tick, ICE_RESTART_GRACE_MS);
  }

  // --- negotiation (polite peer) ----------------------------------------------------------

  /** @param {RTCPeerConnection} pc */
  async _offer(pc) {
    // negotiationneeded fires again once stable if our change is still not negotiated.
    if (pc !== this.pc || pc.signalingState !== "stable") return;
    await pc.setLocalDescription();
    const sdp = pc.localDescription?.sdp;
    const state = /** @type {RTCSignalingState} */ (pc.signalingState);
    if (!sdp || state !== "have-local-offer") return;
    this._describeTracks(pc);
    this._send({ type: "offer", sdp });
  }

  /** @param {string} sdp */
  async _onServerOffer(sdp) {
    let pc = this.pc;
    if (!pc) return;
    const glare = pc.signalingState !== "stable";
    let ufragBefore = iceUfrag(pc.localDescription?.sdp);
    let firstExchange = false;
    if (glare && !pc.currentRemoteDescription) {
      // Glare on the very first exchange (we joined a room with publishers and offered our
      // camera as the server offered theirs). Chromium's rollback of a connection's first offer
      // can leave ICE gathering stuck for good (no candidate ever, "gathering" for ever): as
      // nothing was negotiated yet, start over on a fresh connection instead, answer, then
      // offer our tracks again from it.
      this.rollbacks += 1;
      this.log.info("aiosfu: glare on the first exchange: answering on a fresh connection");
      pc.close();
      this._heldCandidates = [];
      this._endOfCandidatesHeld = false;
      pc = this._newPeerConnection();
      ufragBefore = undefined;
      firstExchange = true;
    } else if (glare) {
      // The server (impolite) has ignored our offer: roll it back, answer, offer again.
      this.rollbacks += 1;
      this.log.info("aiosfu: glare, rolling back our offer to answer the server's");
      await pc.setLocalDescription({ type: "rollback" });
    }
    await pc.setRemoteDescription({ type: "offer", sdp });
    await this._applyRemoteCandidates(pc);
    await pc.setLocalDescription();
    const answer = pc.localDescription?.sdp;
    if (!answer) return;
    this._lastAnswer = answer;
    this._send({ type: "answer", sdp: answer });
    this.negotiations += 1;
    this._releaseCandidates(pc, ufragBefore);
    this._syncRemoteTracks(pc);
    if (firstExchange) for (const track of this._published) this._addSender(pc, track);
  }

  /** @param {string} sdp */
  async _onServerAnswer(sdp) {
    const pc = this.pc;
    if (!pc) return;
    if (pc.signalingState !== "have-local-offer") {
      this.log.warn(`aiosfu: an answer in state ${pc.signalingState}: ignored`);
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp });
    await this._applyRemoteCandidates(pc);
    this.negotiations += 1;
    this._releaseCandidates(pc, iceUfrag(pc.localDescription?.sdp));
    this._syncRemoteTracks(pc);
  }

  // --- candidates -------------------------------------------------------------------------

  /**
   * @param {RTCPeerConnection} pc
   * @param {RTCIceCandidate | null} candidate
   */
  _onLocalCandidate(pc, candidate) {
    if (pc !== this.pc) return;
    const end = candidate === null || candidate.candidate === "";
    // Gathered for an offer the server may ignore (glare): hold until it is answered or
    // rolled back, so that the server never hears end-of-candidates of a dead generation.
    if (pc.signalingState === "have-local-offer") {
      if (end) this._endOfCandidatesHeld = true;
      else if (candidate) this._heldCandidates.push(candidate.toJSON());
      return;
    }
    if (end) this._send({ type: "candidate", candidate: null });
    else if (candidate) this._send({ type: "candidate", candidate: toWire(candidate.toJSON()) });
  }

  /**
   * After an exchange ends: send the candidates held during our offer (those still of the
   * current ICE generation), then end-of-candidates if gathering is complete. End-of-candidates
   * after every offer and answer is the protocol's rule; the server ignores repeats.
   * @param {RTCPeerConnection} pc
   * @param {string | undefined} ufrag the generation the held candidates must belong to
   */
  _releaseCandidates(pc, ufrag) {
    const current = iceUfrag(pc.localDescription?.sdp);
    const held = this._heldCandidates;
    this._heldCandidates = [];
    this._endOfCandidatesHeld = false;
    for (const init of held) {
      const generation = init.usernameFragment ?? ufrag;
      if (generation === current) this._send({ type: "candidate", candidate: toWire(init) });
    }
    // After the server's ICE restart our new generation gathers anew (the state may still say
    // "complete" of the old one): its end-of-candidates comes after its candidates, as an event.
    const restarted = ufrag !== undefined && ufrag !== current;
    if (pc.iceGatheringState === "complete" && !restarted) {
      this._send({ type: "candidate", candidate: null });
    }
  }

  /** @param {IceCandidate | null} candidate */
  async _onServerCandidate(candidate) {
    const pc = this.pc;
    if (!pc) return;
    if (!pc.remoteDescription) {
      this._remoteCandidates.push(candidate);
      return;
    }
    await this._addRemoteCandidate(pc, candidate);
  }

  /** @param {RTCPeerConnection} pc */
  async _applyRemoteCandidates(pc) {
    const queued = this._remoteCandidates;
    this._remoteCandidates = [];
    for (const candidate of queued) await this._addRemoteCandidate(pc, candidate);
  }

  /**
   * @param {RTCPeerConnection} pc
   * @param {IceCandidate | null} candidate
   */
  async _addRemoteCandidate(pc, candidate) {
    if (candidate === null || candidate.candidate === "") {
      await pc.addIceCandidate(null);
      return;
    }
    const line = candidate.candidate.startsWith("candidate:")
      ? candidate.candidate
      : `candidate:${candidate.candidate}`;
    // Max-bundle: every m-line shares the first transport.
    await pc.addIceCandidate({
      candidate: line,
      sdpMid: candidate.sdpMid ?? null,
      sdpMLineIndex: candidate.sdpMLineIndex ?? (candidate.sdpMid == null ? 0 : null),
    });
  }

  // --- remote tracks and participants -------------------------------------------------------

  /**
   * After each exchange: a forwarded m-line that now sends to us is a new track (once per mid
   * and msid: the server reuses the m-line of a track that ended); one that stopped sending has
   * been removed by the server.
   * @param {RTCPeerConnection} pc
   */
  _syncRemoteTracks(pc) {
    const trackIds = msidTrackIds(pc.remoteDescription?.sdp);
    const owners = msidStreamIds(pc.remoteDescription?.sdp);
    for (const transceiver of pc.getTransceivers()) {
      const mid = transceiver.mid;
      if (mid === null) continue;
      const direction = transceiver.currentDirection;
      const receiving = direction === "recvonly" || direction === "sendrecv";
      const known = this._remote.get(mid);
      const trackId = trackIds.get(mid) ?? null;
      if (receiving && !known && this._seenMids.get(mid) !== trackId) {
        const owner = owners.get(mid) ?? this._midOwner.get(mid);
        if (!owner) continue; // not a forwarded track (no msid): nothing to show
        this._seenMids.set(mid, trackId);
        const track = transceiver.receiver.track;
        const participant = this.participants.get(owner) ?? this._addParticipant(owner, null);
        const state = trackId === null ? undefined : this.trackStates.get(trackId);
        /** @type {RemoteTrack} */
        const remote = {
          mid,
          kind: track.kind === "audio" ? "audio" : "video",
          track,
          participant,
          trackId,
          layer: this._layers.get(trackId ?? "") ?? null,
          requested: "auto",
          source: state?.source ?? (track.kind === "audio" ? "microphone" : "camera"),
          muted: state?.muted ?? false,
        };
        this._remote.set(mid, remote);
        participant.tracks.set(mid, remote);
        participant.stream.addTrack(track);
        this._emit("trackadded", remote);
      } else if (!receiving && known) {
        this._removeTrack(known);
      }
    }
  }

  /** @param {RemoteTrack} remote */
  _removeTrack(remote) {
    this._remote.delete(remote.mid);
    remote.participant.tracks.delete(remote.mid);
    remote.participant.stream.removeTrack(remote.track);
    this._emit("trackremoved", remote);
  }

  /** Whether a recorder is in the room (a page shows it: everyone may be recorded). */
  get recording() {
    for (const p of this.participants.values()) if (p.role === "recorder") return true;
    return false;
  }

  /**
   * @param {string} peerId
   * @param {string | null} name
   * @param {Role} [role]
   * @returns {Participant}
   */
  _addParticipant(peerId, name, role) {
    const known = this.participants.get(peerId);
    if (known) {
      if (name !== null && known.name !== name) {
        known.name = name;
        this._emit("participantupdated", known);
      }
      return known;
    }
    const participant = new Participant(peerId, name, role);
    this.participants.set(peerId, participant);
    this._emit("participantjoined", participant);
    return participant;
  }

  /**
   * @param {Participant} participant
   * @param {string} reason
   */
  _removeParticipant(participant, reason) {
    // Its m-lines go inactive in the server's next offer; the tracks end for us now.
    for (const remote of [...participant.tracks.values()]) this._removeTrack(remote);
    this.participants.delete(participant.peerId);
    this._emit("participantleft", { participant, reason });
  }
}

/**
 * The wire form of a candidate (RTCIceCandidateInit as the protocol spells it).
 * @param {RTCIceCandidateInit} init
 * @returns {IceCandidate}
 */
function toWire(init) {
  return {
    candidate: init.candidate ?? "",
    sdpMid: init.sdpMid ?? null,
    sdpMLineIndex: init.sdpMLineIndex ?? null,
    usernameFragment: init.usernameFragment ?? null,
  };
}
