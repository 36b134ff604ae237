// @ts-check
/**
 * Type tests, never run: `tsc -p web` checks that well-formed messages type-check and that each
 * malformed one below is an error (an unneeded @ts-expect-error fails the check).
 */
import { SignalingChannel } from "../sfu-client.js";

/** @param {SignalingChannel} channel */
export function wellFormed(channel) {
  channel.send({ type: "join", room: "standup", name: "Alice" });
  channel.send({ type: "join", room: "standup", name: null, token: null, resume: null });
  channel.send({ type: "offer", sdp: "v=0\r\n" });
  channel.send({ type: "answer", sdp: "v=0\r\n" });
  channel.send({ type: "candidate", candidate: null });
  channel.send({
    type: "candidate",
    candidate: { candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host", sdpMid: "0" },
  });
  channel.send({ type: "leave" });
  channel.send({ type: "ping", id: 7 });
  channel.send({ type: "set_layer", track: "0f0c4a57", layer: "l" });
  channel.send({ type: "set_layer", track: "0f0c4a57", layer: "auto" });
}

/** @param {SignalingChannel} channel */
export function malformed(channel) {
  // @ts-expect-error: `room` is required
  channel.send({ type: "join", name: "Alice" });
  // @ts-expect-error: a misspelled field
  channel.send({ type: "join", room: "standup", nmae: "Alice" });
  // @ts-expect-error: `room` is a string
  channel.send({ type: "join", room: 7 });
  // @ts-expect-error: an offer without its SDP
  channel.send({ type: "offer" });
  // @ts-expect-error: end-of-candidates is null, not a bare string
  channel.send({ type: "candidate", candidate: "" });
  // @ts-expect-error: the candidate object needs its `candidate` string
  channel.send({ type: "candidate", candidate: { sdpMid: "0" } });
  // @ts-expect-error: `welcome` is a server message
  channel.send({ type: "welcome", peer_id: "p", room: "r" });
  // @ts-expect-error: not a message type at all
  channel.send({ type: "subscribe", track: "t" });
  // @ts-expect-error: no `type`
  channel.send({ room: "standup" });
  // @ts-expect-error: layers are l, m, h or auto
  channel.send({ type: "set_layer", track: "0f0c4a57", layer: "high" });
  // @ts-expect-error: set_layer names its track
  channel.send({ type: "set_layer", layer: "h" });
}
