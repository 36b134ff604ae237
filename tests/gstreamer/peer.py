"""A GStreamer webrtcbin participant, speaking protocol v1: run with the system Python and `gi`.

    /usr/bin/python3 tests/gstreamer/peer.py ws://127.0.0.1:8080/ws ROOM NAME [--publish]

The system Python has neither aiohttp nor a GObject WebSocket (no libsoup typelib): the socket
is the few lines of RFC 6455 a client needs, on the standard library. What it sees goes to
stdout as JSON lines (`{"event": ...}`), for tests/gstreamer/gstpeer.py; stdin closing, or a
`leave` line on it, makes it leave the room and exit.

It does what an application on webrtcbin 1.22 has to do, and no more:
- libnice skips loopback addresses: 127.0.0.1 is added to its agent by hand (and the agent is
  kept referenced from Python: losing the reference crashes the process).
- webrtcbin fires `on-negotiation-needed` as soon as it starts, even with nothing to send: that
  offer, with no m-lines, is sent as it is (the server answers it).
- webrtcbin cannot be given end-of-candidates (the server's SDP says `a=end-of-candidates`,
  which is enough): `{"candidate": null}` from the server is dropped here. Its own gathering's
  end is sent as `{"candidate": null}`, since webrtcbin emits no empty candidate for it.
- webrtcbin 1.22 cannot roll back an offer (`set-local-description` with a rollback fails), so
  it cannot be polite on glare: a server offer that crosses its own is dropped. When its own has
  no m-lines (the one at start, in a room where someone already publishes) the server answers it
  anyway and sends its offer again. A webrtcbin that offers m-lines while a server offer is on
  its way stays stuck: the tests publish from webrtcbin into rooms where nobody else publishes.
- `--publish` sends `videotestsrc ! vp8enc` on a `sendonly` transceiver. Every video track the
  server forwards is depayloaded and decoded (vp8dec); decoded frames are counted per
  publisher (the msid stream id of the m-line), with their size.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import socket
import struct
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 240, 15


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


class WebSocket:
    """A client WebSocket (RFC 6455) on a plain socket: text frames, pings answered."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.scheme == "ws" and parts.hostname, f"ws:// URLs only, not {url}"
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the server closed the socket during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head.splitlines()[0]!r}")
        self.sock.settimeout(None)
        self.lock = threading.Lock()

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(header + mask + masked)

    def send(self, message: dict[str, Any]) -> None:
        self._send_frame(0x1, json.dumps(message).encode())

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("socket closed")
            data += chunk
        return data

    def receive(self) -> str | None:
        """The next text message; None once the server closed the socket."""
        message = b""
        while True:
            try:
                first, second = self._read_exactly(2)
            except (ConnectionError, OSError):
                return None
            size = second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._read_exactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._read_exactly(8))
            payload = self._read_exactly(size)  # server frames are not masked
            opcode = first & 0x0F
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                return None
            elif opcode in (0x0, 0x1):
                message += payload
                if first & 0x80:
                    return message.decode()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send_frame(0x8, struct.pack("!H", 1000))
        self.sock.close()


class Peer:
    def __init__(self, url: str, room: str, name: str, publish: bool) -> None:
        self.room, self.name, self.publish = room, name, publish
        self.loop = GLib.MainLoop()
        self.pipeline = Gst.Pipeline.new("peer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.pipeline.add(self.webrtc)
        # Kept referenced: libnice's agent must outlive every call made on it from here.
        self.agent = self.webrtc.get_property("ice-agent")
        self.agent.emit("add-local-ip-address", "127.0.0.1")
        self.webrtc.connect("on-negotiation-needed", self.on_negotiation_needed)
        self.webrtc.connect("on-ice-candidate", self.on_ice_candidate)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering_state)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        self.webrtc.connect("pad-added", self.on_pad_added)
        self.counts: dict[str, int] = {}  # decoded video frames per publisher
        self.sizes: dict[str, tuple[int, int]] = {}
        self.reported: dict[str, int] = {}
        self.creating = self.awaiting_answer = self.answering = False
        self.ws = WebSocket(url)

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message::error", self.on_bus_error)
        threading.Thread(target=self.read_socket, daemon=True).start()
        threading.Thread(target=self.read_stdin, daemon=True).start()
        self.ws.send({"type": "join", "room": self.room, "name": self.name})
        GLib.timeout_add(250, self.report_frames)
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        self.ws.close()

    def read_socket(self) -> None:
        while (text := self.ws.receive()) is not None:
            GLib.idle_add(self.on_message, json.loads(text))
        GLib.idle_add(self.stop, "the server closed the socket")

    def read_stdin(self) -> None:
        for line in sys.stdin:
            if line.strip() == "leave":
                break
        GLib.idle_add(self.leave)

    def leave(self) -> bool:
        with contextlib.suppress(OSError):
            self.ws.send({"type": "leave"})
        self.stop("left")
        return False

    def stop(self, reason: str) -> bool:
        emit("stopped", reason=reason)
        self.loop.quit()
        return False

    def on_bus_error(self, _bus: Any, message: Any) -> None:
        error, debug = message.parse_error()
        emit("gst_error", message=error.message, debug=debug)

    # --- signaling -----------------------------------------------------------------------

    def on_message(self, msg: dict[str, Any]) -> bool:
        kind = msg["type"]
        if kind == "welcome":
            emit("welcome", peer_id=msg["peer_id"])
            if self.publish:
                self.add_source()
            self.pipeline.set_state(Gst.State.PLAYING)
        elif kind == "offer":
            self.on_server_offer(msg["sdp"])
        elif kind == "answer":
            self.on_server_answer(msg["sdp"])
        elif kind == "candidate":
            candidate = msg["candidate"]
            if candidate is None or not candidate["candidate"]:
                return False  # webrtcbin 1.22 cannot take end-of-candidates
            index = candidate.get("sdpMLineIndex") or 0
            self.webrtc.emit("add-ice-candidate", index, candidate["candidate"])
        elif kind == "error":
            emit("server_error", code=msg["code"], message=msg["message"])
        elif kind in ("participant_joined", "participant_left"):
            emit(kind, peer_id=msg["peer_id"])
        return False

    # webrtcbin applies descriptions on a thread of its own: its signaling-state lags behind
    # what was asked of it. The negotiation's state is kept here, on the main loop, where the
    # server's messages are handled in order: `creating` (an offer of ours is being made),
    # `awaiting_answer` (sent), `answering` (a server offer is being answered).

    def on_negotiation_needed(self, _webrtc: Any) -> None:
        GLib.idle_add(self.make_offer)

    def make_offer(self) -> bool:
        if self.creating or self.awaiting_answer or self.answering:
            return False  # negotiation-needed fires again once stable, if still needed
        self.creating = True
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, None)
        self.webrtc.emit("create-offer", None, promise)
        return False

    def on_offer_created(self, promise: Any, _data: Any) -> None:
        GLib.idle_add(self.send_offer, promise)

    def send_offer(self, promise: Any) -> bool:
        # The description lives in the promise's reply: both stay referenced while it is used.
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.creating = False
        if self.answering:
            return False  # a server offer came first: answer it, offer after if still needed
        self.webrtc.emit("set-local-description", offer, None)
        text = offer.sdp.as_text()
        self.awaiting_answer = True
        emit("offer_sent", m_lines=text.count("\nm="))
        self.ws.send({"type": "offer", "sdp": text})
        return False

    def on_server_answer(self, sdp: str) -> None:
        self.awaiting_answer = False
        self.set_remote(GstWebRTC.WebRTCSDPType.ANSWER, sdp, None)

    def on_server_offer(self, sdp: str) -> None:
        if self.awaiting_answer:
            # Glare, and webrtcbin 1.22 cannot roll back: the offer is dropped. When ours has
            # no m-lines the server answers it anyway and sends its offer again.
            emit("glare")
            return
        self.answering = True
        self.set_remote(GstWebRTC.WebRTCSDPType.OFFER, sdp, self.answer)

    def set_remote(self, kind: Any, sdp: str, then: Any) -> None:
        result, message = GstSdp.SDPMessage.new_from_text(sdp)
        assert result == GstSdp.SDPResult.OK, f"cannot parse the server's SDP: {result}"
        description = GstWebRTC.WebRTCSessionDescription.new(kind, message)
        self.remote_sdp = sdp

        def applied(promise: Any, _data: Any) -> None:
            reply = promise.get_reply()
            if reply is not None and reply.has_field("error"):
                emit("gst_error", message=str(reply.get_value("error")))
            elif then is not None:
                GLib.idle_add(then)

        promise = Gst.Promise.new_with_change_func(applied, None)
        self.webrtc.emit("set-remote-description", description, promise)

    def answer(self) -> bool:
        def created(promise: Any, _data: Any) -> None:
            GLib.idle_add(self.send_answer, promise)

        promise = Gst.Promise.new_with_change_func(created, None)
        self.webrtc.emit("create-answer", None, promise)
        return False

    def send_answer(self, promise: Any) -> bool:
        reply = promise.get_reply()
        answer = reply.get_value("answer")
        self.webrtc.emit("set-local-description", answer, None)
        self.ws.send({"type": "answer", "sdp": answer.sdp.as_text()})
        self.answering = False
        emit("answer_sent", m_lines=answer.sdp.medias_len())
        return False

    def on_ice_candidate(self, _webrtc: Any, index: int, candidate: str) -> None:
        init = {"candidate": candidate, "sdpMLineIndex": index}
        GLib.idle_add(self.send_candidate, init)

    def send_candidate(self, init: dict[str, Any] | None) -> bool:
        self.ws.send({"type": "candidate", "candidate": init})
        return False

    def on_gathering_state(self, webrtc: Any, _param: Any) -> None:
        state = webrtc.get_property("ice-gathering-state")
        emit("gathering", state=state.value_nick)
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.send_candidate, None)

    def on_connection_state(self, webrtc: Any, _param: Any) -> None:
        state = webrtc.get_property("connection-state")
        emit("connection", state=state.value_nick)

    # --- media -----------------------------------------------------------------------------

    def add_source(self) -> None:
        source = Gst.parse_bin_from_description(
            f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={WIDTH},height={HEIGHT},"
            f"framerate={FPS}/1 ! videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=30"
            ' ! rtpvp8pay pt=96 ! capsfilter caps="application/x-rtp,media=video,'
            'encoding-name=VP8,payload=96"',
            True,
        )
        self.pipeline.add(source)
        source.link(self.webrtc)
        transceiver = self.webrtc.emit("get-transceiver", 0)
        transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)

    def on_pad_added(self, _webrtc: Any, pad: Any) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps().get_structure(0)
        publisher = self.publisher_of(pad)
        if caps.get_value("media") == "video":
            chain = "queue ! rtpvp8depay ! vp8dec ! fakesink name=sink sync=false"
        else:
            chain = "fakesink sync=false"
        branch = Gst.parse_bin_from_description(chain, True)
        self.pipeline.add(branch)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))
        if caps.get_value("media") == "video":
            self.counts.setdefault(publisher, 0)
            sink_pad = branch.get_by_name("sink").get_static_pad("sink")
            sink_pad.add_probe(Gst.PadProbeType.BUFFER, self.on_frame, publisher)
        emit("track", kind=caps.get_value("media"), peer_id=publisher)

    def publisher_of(self, pad: Any) -> str:
        """The msid stream id (the publisher's peer_id) of the pad's m-line."""
        mid = pad.get_property("transceiver").get_property("mid")
        for section in self.remote_sdp.split("\nm=")[1:]:
            if re.search(rf"^a=mid:{re.escape(mid)}\r?$", section, re.MULTILINE):
                found = re.search(r"^a=msid:(\S+)", section, re.MULTILINE)
                return found.group(1) if found else "?"
        return "?"

    def on_frame(self, pad: Any, _info: Any, publisher: str) -> Any:
        self.counts[publisher] += 1
        if publisher not in self.sizes and (caps := pad.get_current_caps()) is not None:
            structure = caps.get_structure(0)
            self.sizes[publisher] = (
                structure.get_value("width"),
                structure.get_value("height"),
            )
        return Gst.PadProbeReturn.OK

    def report_frames(self) -> bool:
        for publisher, count in list(self.counts.items()):
            if self.reported.get(publisher) != count:
                self.reported[publisher] = count
                width, height = self.sizes.get(publisher, (0, 0))
                emit("frames", peer_id=publisher, count=count, width=width, height=height)
        return True


ELEMENTS = ("webrtcbin", "nicesrc", "dtlssrtpenc", "videotestsrc", "vp8enc", "vp8dec")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", nargs="?")
    parser.add_argument("room", nargs="?")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--publish", action="store_true", help="send videotestsrc ! vp8enc")
    parser.add_argument("--check", action="store_true", help="exit 1 if an element is missing")
    args = parser.parse_args()
    Gst.init(None)
    if args.check:
        missing = [e for e in ELEMENTS if Gst.ElementFactory.find(e) is None]
        emit("check", gstreamer=Gst.version_string(), missing=missing)
        sys.exit(1 if missing else 0)
    if not (args.url and args.room and args.name):
        parser.error("url, room and name are required")
    emit("started", gstreamer=Gst.version_string())
    Peer(args.url, args.room, args.name, args.publish).run()


if __name__ == "__main__":
    main()
