// Protocol v1 of the aiosfu signaling hub (GET /ws), generated from signaling/protocol.py.
// Do not edit: run `make tstypes` (python -m signaling.tstypes > web/protocol.d.ts).
// docs/protocol.md explains every message.

/** Who speaks now, loudest first (empty: nobody); sent when that changes, at most four times
a second. */
export interface ActiveSpeakers {
  type: "active_speakers";
  speakers: SpeakerInfo[];
}

/** The client's answer to the server's pending offer. */
export interface Answer {
  type: "answer";
  /** at most 204800 characters */
  sdp: string;
}

/** A trickled ICE candidate; null is end-of-candidates, sent after every offer and answer. */
export interface Candidate {
  type: "candidate";
  candidate: IceCandidate | null;
}

/** What a client receives on a data channel: who sent `payload` (`sender`), and, for a
message sent to chosen participants, whom it was for (`to`). */
export interface DataReceived {
  sender: string;
  payload: unknown;
  to?: string[] | null;
}

/** What a client sends on a data channel: `payload`, any JSON value, for `to` (peer ids;
absent: everyone else in the room). */
export interface DataSend {
  payload: unknown;
  to?: string[] | null;
}

/** Say what a track you publish is (its msid track id): its source, and whether it starts
muted. Sent before the offer that publishes it, or at any time after. */
export interface DescribeTrack {
  type: "track_info";
  /** 1-256 characters */
  track: string;
  source: "camera" | "microphone" | "screen" | "screen_audio";
  muted?: boolean;
}

/** Something the client sent could not be handled; the session stays usable. */
export interface Error {
  type: "error";
  code: ErrorCode;
  message: string;
}

/** Stable error codes; docs/protocol.md says when each is sent. */
export type ErrorCode = "already_joined" | "bad_candidate" | "bad_data" | "bad_json" | "bad_message" | "bad_sdp" | "data_not_allowed" | "data_rate_limited" | "data_too_large" | "internal_error" | "join_timeout" | "media_failed" | "no_offer_pending" | "not_joined" | "publish_not_allowed" | "rate_limited" | "removed" | "replaced" | "resume_failed" | "room_closed" | "room_full" | "token_expired" | "token_invalid" | "token_not_yet_valid" | "token_required" | "token_wrong_room" | "too_large" | "too_many_candidates" | "too_many_tracks" | "unknown_track" | "unknown_type";

/** The server is shutting down (SIGTERM): media goes on until it closes this socket, a few
seconds from now; a `join` meanwhile is answered with this and the socket closed. Connect
again no sooner than `retry_after` seconds after the socket closes (plus a random share of
it, so that a room does not come back in one instant): as a fresh session, since a server
that restarts keeps none. */
export interface GoingAway {
  type: "going_away";
  reason: string;
  retry_after: number;
}

/** What this participant may do, from its room token. */
export interface GrantInfo {
  publish: boolean;
  subscribe: boolean;
  data?: boolean;
}

/** An ICE candidate, spelled as browsers spell RTCIceCandidateInit. */
export interface IceCandidate {
  /** at most 1024 characters */
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** One entry of RTCConfiguration.iceServers. */
export interface IceServerInfo {
  urls: string[];
  username?: string | null;
  credential?: string | null;
}

/** Fresh ICE servers, with new TURN credentials, before those of `welcome` expire: use
them for any later gathering (an ICE restart, a new connection). */
export interface IceServers {
  type: "ice_servers";
  ice_servers: IceServerInfo[];
}

/** Enter a room, or with `resume` (a `welcome.resume_token`) come back to the same session
after losing the socket. */
export interface Join {
  type: "join";
  /**
   * 1-64 characters
   * matching /^[A-Za-z0-9_.-]+$/
   */
  room: string;
  /** at most 64 characters */
  name?: string | null;
  /** at most 4096 characters */
  token?: string | null;
  /** at most 4096 characters */
  resume?: string | null;
  role?: "participant" | "recorder";
  data?: boolean;
}

/** The simulcast layer the server now forwards on one of your tracks, and what you asked. */
export interface LayerChanged {
  type: "layer";
  track: string;
  layer: "h" | "l" | "m";
  requested: "auto" | "h" | "l" | "m";
}

/** Leave the room; the socket stays open and may join again. */
export interface Leave {
  type: "leave";
}

/** Mute or unmute a track you publish: the server stops forwarding it (and starts again,
on a keyframe), and tells the others. */
export interface Mute {
  type: "mute";
  /** 1-256 characters */
  track: string;
  muted: boolean;
}

/** A client offer, sent when what the client publishes changes. */
export interface Offer {
  type: "offer";
  /** at most 204800 characters */
  sdp: string;
}

/** Another participant of the room; `role` is left out for a plain participant. */
export interface ParticipantInfo {
  peer_id: string;
  name: string | null;
  role?: "participant" | "recorder";
}

/** Someone else entered the room; `role` is left out for a plain participant. */
export interface ParticipantJoined {
  type: "participant_joined";
  peer_id: string;
  name: string | null;
  role?: "participant" | "recorder";
}

/** Someone else left the room: on purpose, by losing its socket, or by a media failure. */
export interface ParticipantLeft {
  type: "participant_left";
  peer_id: string;
  name: string | null;
  reason: "disconnected" | "failed" | "left" | "removed" | "replaced";
}

/** Ask for a `pong` carrying the same id. */
export interface Ping {
  type: "ping";
  /** at most 64 characters */
  id?: number | string | null;
}

/** The answer to `ping`, with the same id. */
export interface Pong {
  type: "pong";
  /** at most 64 characters */
  id?: number | string | null;
}

/** The simulcast layers of one of your published video tracks to keep sending (every one up
to the highest anyone receives); pause the others (dynacast). `track` is your track's id
(its msid track id). */
export interface PublishLayers {
  type: "publish_layers";
  track: string;
  layers: Array<"h" | "l" | "m">;
}

/** Your media connection is replaced, your session kept (the server could not restart ICE
in place: its side of the connection is gone). Close your RTCPeerConnection and make a new
one with these ICE servers (fresh TURN credentials); publish the same tracks on it (same
track ids: they keep their publications, and their subscribers their m-lines) and answer
the server's offer, which brings back what you receive. Same `peer_id`: the others see
nothing. What you send about the old connection after this is ignored. */
export interface Rebuild {
  type: "rebuild";
  reason: string;
  ice_servers: IceServerInfo[];
}

/** The server's answer to a client offer. */
export interface ServerAnswer {
  type: "answer";
  sdp: string;
}

/** A server offer, sent when what the client receives changes. */
export interface ServerOffer {
  type: "offer";
  sdp: string;
}

/** Choose the simulcast layer of a forwarded video track (`auto`, the default: the server's
choice). `track` is its msid track id, as this client sees it in the server's SDP. */
export interface SetLayer {
  type: "set_layer";
  /** 1-256 characters */
  track: string;
  layer: "auto" | "h" | "l" | "m";
}

/** A participant speaking, and how loud: its smoothed audio level, linear, 0 to 1. */
export interface SpeakerInfo {
  peer_id: string;
  level: number;
}

/** A track another participant publishes, and each change of it: sent before its m-line is
offered. `track` is the msid track id it is forwarded with; `layers`, its simulcast layers. */
export interface TrackState {
  type: "track_state";
  peer_id: string;
  track: string;
  kind: "audio" | "video";
  source: "camera" | "microphone" | "screen" | "screen_audio";
  muted: boolean;
  layers?: Array<"h" | "l" | "m">;
}

/** A track another participant published is gone (its m-line goes inactive next). */
export interface TrackUnpublished {
  type: "track_unpublished";
  peer_id: string;
  track: string;
}

/** The answer to `join`: who you are, how to configure ICE, who is already there.

`resumed` is true when a `join` with `resume` got its session back: same peer_id, same
media; `participants` is then who is in the room now, for the client to reconcile with. */
export interface Welcome {
  type: "welcome";
  peer_id: string;
  room: string;
  ice_servers: IceServerInfo[];
  ice_mode: "all" | "stun-only" | "turn-only";
  participants: ParticipantInfo[];
  resume_token: string | null;
  grants?: GrantInfo | null;
  simulcast?: boolean;
  resumed?: boolean;
}

/** What a client may send. */
export type ClientMessage = Join | Offer | Answer | Candidate | Leave | Ping | SetLayer | DescribeTrack | Mute;

/** What the server sends. */
export type ServerMessage = Welcome | ParticipantJoined | ParticipantLeft | ServerOffer | ServerAnswer | Candidate | Error | Pong | IceServers | LayerChanged | TrackState | TrackUnpublished | ActiveSpeakers | PublishLayers | GoingAway | Rebuild;
