"""Participant: one client session's media, one RTCPeerConnection with the server.

Implements signaling.backend.MediaPeer. Owns the negotiation with its client (the server is
impolite: a client offer that crosses the server's pending offer is ignored), its Publications
(what the client sends) and its Subscriptions (what the server forwards to it). Every negotiation
step runs under one lock, and forwarding transceivers are added only when the connection is
stable and then offered at once: aiortc binds an incoming m-line to any same-kind transceiver
not yet negotiated. Closed by the hub (leave, socket gone) or when its connection fails.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiortc import (
    MediaStreamTrack,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from signaling.backend import (
    ALL_GRANTS,
    CandidateInit,
    Grants,
    NegotiationError,
    PeerSignals,
    RoomEvent,
    TrackInfo,
)
from signaling.log import bind

from .config import SfuConfig
from .datachannels import DataChannels
from .downlink import Downlink
from .dynacast import Dynacast
from .payload import keyframe_check
from .peerconfig import rtc_configuration
from .publication import Publication, source_for
from .rtc import datachannel as rtc_datachannel
from .rtc import dtls as rtc_dtls
from .rtc import fastpath, rtcp
from .rtc import jitter as rtc_jitter
from .rtc import receiver as rtc_receiver
from .rtc import simulcast as rtc_simulcast
from .rtc.audiolevel import audio_level_id
from .rtc.candidates import add_remote_candidate
from .rtc.ice import turn_failure
from .rtc.icerestart import IceRestart, remote_ufrag
from .rtc.iceservers import set_ice_servers
from .rtc.ingress import RtpIngress
from .rtc.offer import create_offer
from .rtc.simulcast import LAYERS, SimulcastNegotiation
from .rtc.transportcc import accept_transport_cc
from .rtc.twcc import TransportFeedback
from .sdpcheck import answer_with_no_m_lines, check_description, drop_empty_bundle, mlines
from .subscription import ResumePoint, Subscription

if TYPE_CHECKING:
    from aiortc import RTCIceCandidate

    from .metrics import MediaTotals
    from .room import Room

logger = logging.getLogger(__name__)

# No RTP or RTCP from a client for this long while its connection is up: its path is taken for
# dead and the server restarts ICE itself (Chromium alone takes ~6.4 s to notice, aiortc ~30 s).
DEAD_PATH_TIMEOUT = 2.5
DEAD_PATH_RETRIES = 3  # server restarts after one whose checks failed, while still silent
# Where ICE cannot restart in place (our side of the connection is gone) the connection is
# rebuilt, the session kept: at most this many times in REBUILD_WINDOW seconds, and a rebuilt
# connection must be up within REBUILD_DEADLINE seconds; beyond, the client is told
# `media_failed` and leaves the room, as before.
REBUILD_ATTEMPTS = 3
REBUILD_WINDOW = 60.0
REBUILD_DEADLINE = 15.0
_CANDIDATE_UFRAG = re.compile(r"\sufrag\s+(\S+)")


def parse_candidate(init: CandidateInit) -> RTCIceCandidate:
    """Browsers prefix the candidate string with "candidate:", aiortc does not: take both."""
    text = init.candidate.strip()
    if text.startswith("candidate:"):
        text = text[len("candidate:") :]
    try:
        candidate = candidate_from_sdp(text)
    except Exception as exc:  # aiortc's parser raises whatever the bad field makes it raise
        raise NegotiationError("bad_candidate", f"cannot parse candidate {text!r}: {exc}") from None
    # Max-bundle: every m-line shares the first one's transport, the only one aiortc feeds.
    candidate.sdpMid = None
    candidate.sdpMLineIndex = 0
    return candidate


class Participant:
    def __init__(
        self,
        room: Room,
        peer_id: str,
        signals: PeerSignals,
        config: SfuConfig,
        *,
        grants: Grants = ALL_GRANTS,
        data: bool = False,
    ) -> None:
        self.room = room
        self.id = peer_id
        self.grants = grants
        self.offers_data = data  # the client opens data channels: our offers carry their m-line
        self.signals = signals
        self.config = config
        self.log = bind(room.log, peer=peer_id)
        # The data channels the client opens (sfu.datachannels): relayed through the room.
        self.data = DataChannels(
            config.limits,
            grants,
            room.data_counts,
            relay=lambda kind, msg: self.room.relay_data(self, kind, msg),
            refuse=self.signals.event,
        )
        self.pc = self._new_peer_connection()
        self.publications: dict[str, Publication] = {}
        self.subscriptions: dict[str, Subscription] = {}  # by publication id
        self.closed = False
        self.glare_ignored = 0  # client offers ignored because ours was pending
        # Set while the client's ignored offer is being abandoned: its trickled candidates, and
        # above all its end-of-candidates, must not reach ICE (aiortc drops every candidate
        # after an end-of-candidates). Cleared by the client's answer to our offer.
        self._discarding_candidates = False
        self._publication_transceivers: dict[str, RTCRtpTransceiver] = {}
        self._to_add: list[Subscription] = []
        self._to_remove: list[Subscription] = []
        # M-lines whose forwarded track ended, with where its stream stopped: the next track
        # of that kind and codec takes one over once the client has taken it as inactive (a
        # long call's SDP stays the size of what it carries). Those taken over in the offer
        # in flight start sending once it is answered.
        self._free_lines: list[tuple[RTCRtpTransceiver, ResumePoint | None]] = []
        self._reused: list[Subscription] = []
        self._new_tracks: list[
            tuple[MediaStreamTrack, RTCRtpReceiver, rtc_receiver.EncodedFrameSink]
        ] = []
        self._early_candidates: list[RTCIceCandidate | None] = []
        self._candidates = 0  # received since the last remote description (limits.candidates)
        self._ingresses: list[RtpIngress] = []  # one per DTLS transport (one, with max-bundle)
        # What we send the client: its bandwidth, and the layers of its `auto` subscriptions.
        self.downlink = Downlink(lambda: self.subscriptions.values(), self.log)
        self._dynacast: dict[str, Dynacast] = {}  # by publication id, for simulcast ones
        self._simulcast = SimulcastNegotiation()  # the client's simulcast m-lines
        # What the client said of tracks it has not published yet: msid track id -> (source,
        # muted), taken by the publication when its offer comes (describe_track).
        self._described: dict[str, tuple[str, bool]] = {}
        # The msid track id of each of the client's m-lines (mid -> id): what its publication
        # is named by. aiortc's own track id ignores an msid whose stream the session-level
        # `a=msid-semantic: WMS` does not list, and Chromium lists none.
        self._msid_tracks: dict[str, str] = {}
        rtc_simulcast.install()  # RID extensions negotiated, packets routed by MID
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._restart_side = "client"  # who began the restart in progress
        self.totals: MediaTotals | None = None  # where recoveries are counted (sfu.metrics)
        self._heard = (0, 0)  # what the client had sent when last looked (_watch_path)
        self._heard_at = 0.0
        self._path_armed = False  # traffic seen since the last restart: silence means something
        self._path_retries = 0  # server restarts in a row whose checks failed
        # Rebuilds (see rebuild()): when each began; the one in progress (side, start); the
        # publications waiting for their track on the new connection, by id; the ICE
        # credentials of connections replaced, whose descriptions and candidates are dropped.
        self._rebuilds: list[float] = []
        self._rebuilding: tuple[str, float] | None = None
        self._replaced: dict[str, Publication] = {}
        self._retired_ufrags: set[str] = set()
        self._awaiting_rebuilt = False  # no remote description on the new connection yet

    # --- MediaPeer -------------------------------------------------------------------------

    async def offer(self, sdp: str) -> None:
        async with self._lock:
            if self.closed or self._retired(sdp, "offer"):
                return
            if self.pc.signalingState == "have-local-offer":
                if self._answer_empty_offer_in_glare(sdp):
                    return
                # Impolite side of perfect negotiation: the client rolls back and answers ours.
                self.log.info("glare: ignoring the client's offer, the server's is pending")
                self.glare_ignored += 1
                self._discarding_candidates = True
                return
            # A connection that never came up has nothing to restart nor rebuild: aiortc
            # answers with the credentials it has, and its checks go on.
            restart = self.ice_restart.is_restart(sdp) and self._connected_once
            if restart and not await self._begin_ice_restart("client", retire=sdp):
                return  # its connection is being rebuilt: the client offers on the new one
            await self._set_remote(sdp, "offer")
            self._accept_transport_cc()
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
            for ingress in self._ingresses:
                ingress.install()  # again: the sockets ICE gathered for the answer exist now
            if self._relay_failed():
                return
            self._read_audio_levels()
            answer_sdp = drop_empty_bundle(self.pc.localDescription.sdp)
            self.signals.send_answer(self._simulcast.describe(answer_sdp))
            self.signals.send_candidate(None)
            self._publish_new_tracks()
            self._unpublish_stopped_tracks()
        self._schedule_renegotiation()

    def _answer_empty_offer_in_glare(self, sdp: str) -> bool:
        """Answer a client offer with no m-lines that crossed our first offer; True if done.

        GStreamer's webrtcbin offers no m-lines as soon as it starts, and cannot roll back
        (1.22): ignored, it would stay in have-local-offer and refuse our offer for good. Such
        an offer negotiates nothing, so its answer needs nothing from our connection (which
        has an offer pending); our offer, which the client could not take, goes again after.
        """
        if any(t.currentDirection is not None for t in self.pc.getTransceivers()):
            return False  # not the start: the client has negotiated m-lines, it must keep them
        try:
            if check_description(sdp, "offer", []).media:
                return False
        except NegotiationError:
            return False
        self.log.info("glare with an offer with no m-lines: answered it, sending ours again")
        self.signals.send_answer(answer_with_no_m_lines())
        self.signals.send_candidate(None)
        self.signals.send_offer(self.pc.localDescription.sdp)
        self.signals.send_candidate(None)
        return True

    async def answer(self, sdp: str) -> None:
        async with self._lock:
            if self.closed or self._retired(sdp, "answer"):
                return
            if self.pc.signalingState != "have-local-offer":
                raise NegotiationError("no_offer_pending", "there is no server offer to answer")
            self._discarding_candidates = False
            await self._set_remote(sdp, "answer")
            reused, self._reused = self._reused, []
            for sub in reused:
                sub.sender_started()
        self._schedule_renegotiation()

    async def candidate(self, candidate: CandidateInit | None) -> None:
        parsed = None if candidate is None else parse_candidate(candidate)
        if self.closed:
            return
        if parsed is not None:
            self._count_candidate()
        if self._awaiting_rebuilt and self._of_replaced_connection(candidate):
            self.log.debug("dropped a candidate of the replaced connection: %s", candidate)
            return
        if self._discarding_candidates:
            # The client sends its candidates after its offer, and before its answer to ours.
            self.log.debug("dropped a candidate of the client's abandoned offer: %s", candidate)
            return
        if self.pc.remoteDescription is None:
            # Candidates may overtake the offer; aiortc would drop them.
            self.log.debug("candidate before any remote description, kept: %s", candidate)
            self._early_candidates.append(parsed)
            return
        self.log.debug("candidate: %s", candidate)
        await add_remote_candidate(self.pc, parsed)

    async def set_layer(self, track: str, layer: str) -> None:
        sub = next((s for s in self.subscriptions.values() if s.track.id == track), None)
        if sub is None or sub.publication.kind != "video":
            raise NegotiationError("unknown_track", f"no video track {track!r} is forwarded to you")
        sub.set_preferred(None if layer == "auto" else LAYERS.index(layer))
        self.log.info("track %s: layer %s asked for", track[:8], layer)
        self._on_layer(sub)  # says what it gets until the switch, and that the ask was heard

    async def describe_track(self, track: str, source: str, muted: bool) -> None:
        pub = self.publications.get(track)
        if pub is not None:
            described = source_for(pub.kind, source)
            if described != pub.source:
                pub.source = described
                self.room.announce(pub)
            await self.mute(track, muted)
            return
        self._described.pop(track, None)
        self._described[track] = (source, muted)
        # Bounded: descriptions of offers abandoned in glare are never published.
        while len(self._described) > max(self.config.limits.tracks, 1):
            del self._described[next(iter(self._described))]

    async def mute(self, track: str, muted: bool) -> None:
        pub = self.publications.get(track)
        if pub is None:
            if track not in self._described:
                raise NegotiationError("unknown_track", f"you publish no track {track!r}")
            self._described[track] = (self._described[track][0], muted)
            return
        if pub.set_muted(muted):
            self.room.announce(pub)

    async def resumed(self) -> None:
        # The tracks' states (source, muted) may have changed while the client was away.
        for pub in self.room.publications():
            if pub.publisher_id != self.id:
                self.tell(pub.state())
        async with self._lock:
            if self.closed:
                return
            if self._awaiting_rebuilt:
                # Our `rebuild` went down with the old socket (parked, nothing reaches it).
                self.log.info("resumed while rebuilding: telling the client again")
                self._tell_rebuild("the media connection is being rebuilt")
            if self.pc.signalingState != "have-local-offer":
                return
            # Our offer may have gone down with the old socket: the same one again. Should the
            # client have answered it already, it answers this repeat too, which changes nothing.
            self.log.info("resumed with our offer pending: sending it again")
            self.signals.send_offer(self.pc.localDescription.sdp)
            self.signals.send_candidate(None)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.room.leave(self)
        for task in list(self._tasks):
            task.cancel()
        for sub in self.subscriptions.values():
            sub.close()
        self.subscriptions.clear()
        for pub in self.publications.values():
            pub.close()
        self.publications.clear()
        for ingress in self._ingresses:
            ingress.close()
        self._ingresses.clear()
        self.downlink.close()
        self._dynacast.clear()
        self.data.close()
        self._to_add.clear()
        self._to_remove.clear()
        await self.ice_restart.abandon()  # its new connection is not the transport's yet
        await self.pc.close()
        self._replaced.clear()  # closed with the publications
        self.log.info("left")

    def tracks(self) -> list[TrackInfo]:
        others = [p for p in self.room.participants.values() if p is not self]
        return [
            TrackInfo(pub.id, pub.kind, sum(pub.id in p.subscriptions for p in others))
            for pub in self.publications.values()
        ]

    # --- room side -------------------------------------------------------------------------

    def subscribe(self, publication: Publication) -> None:
        if self.closed or publication.id in self.subscriptions or not self.grants.subscribe:
            return
        sub = Subscription(publication, self.id)
        sub.on_layer = self._on_layer
        self.subscriptions[publication.id] = sub
        self._to_add.append(sub)
        self._schedule_renegotiation()

    def tell(self, event: RoomEvent) -> None:
        """Pass a room event on to the client, if it can receive what it is about."""
        if not self.closed and self.grants.subscribe:
            self.signals.event(event)

    def _on_layer(self, sub: Subscription) -> None:
        layer = sub.current
        if sub.publication.simulcast and layer is not None and layer.rid is not None:
            self.signals.layer_changed(sub.track.id, layer.rid, sub.requested)

    def unsubscribe(self, publication: Publication) -> None:
        sub = self.subscriptions.pop(publication.id, None)
        if sub is None:
            return
        if sub in self._to_add:  # never offered: nothing to renegotiate
            self._to_add.remove(sub)
            sub.close()
            return
        self._to_remove.append(sub)
        self._schedule_renegotiation()

    # --- internals -------------------------------------------------------------------------

    def _count_candidate(self) -> None:
        limit = self.config.limits.candidates
        if limit and self._candidates >= limit:
            raise NegotiationError(
                "too_many_candidates",
                f"more than {limit} candidates for one description: this one is dropped",
            )
        self._candidates += 1

    async def _set_remote(self, sdp: str, kind: str) -> None:
        negotiated = mlines(self.pc.localDescription)  # the data channels' m-line included
        description = check_description(
            sdp,
            kind,
            negotiated,
            max_tracks=self.config.limits.tracks if self.grants.publish else -1,
        )
        self._candidates = 0
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError, OperationError...
            self.log.info("rejected %s: %s", kind, exc)
            raise NegotiationError("bad_sdp", f"cannot apply the {kind}: {exc}") from None
        self._awaiting_rebuilt = False
        self._simulcast.remote(sdp, kind)
        self.ice_restart.remote_description(sdp)  # the new credentials' checks, if restarting
        rtc_datachannel.bundle_data_channels(self.pc)
        for media in description.media:
            stream_and_track = (media.msid or "").split()
            if len(stream_and_track) == 2:
                self._msid_tracks[media.rtp.muxId] = stream_and_track[1]
        self._lean_rtcp()
        early, self._early_candidates = self._early_candidates, []
        for candidate in early:
            await add_remote_candidate(self.pc, candidate)

    def _bundle_transport(self) -> RTCDtlsTransport | None:
        """Max-bundle: the first m-line's transport carries everything. The data channels' is
        it when they came first (a client that publishes nothing yet): transceivers made
        afterwards share it."""
        transceivers = self.pc.getTransceivers()
        if transceivers:
            return transceivers[0].receiver.transport
        sctp = self.pc.sctp
        return sctp.transport if sctp is not None else None

    def _lean_rtcp(self) -> None:
        dtls = self._bundle_transport()
        if dtls is not None:
            rtc_dtls.prefer_aes_128_gcm(dtls)  # before the handshake: ICE has not even begun
            rtc_dtls.accept_rsa_peers(dtls)  # we are the DTLS client when answering
            rtcp.skip_receiver_reports(dtls)
            self._ingress(dtls).install()  # its guard against datagrams that end a connection

    def _accept_transport_cc(self) -> None:
        # The publisher numbers its packets and gets our transport-cc feedback (sfu.rtc.twcc):
        # its own estimator then finds its uplink's rate in about a second.
        extension_id = accept_transport_cc(self.pc)
        transceivers = self.pc.getTransceivers()
        if extension_id is not None and transceivers:
            ingress = self._ingress(transceivers[0].receiver.transport)
            ingress.use_transport_cc(extension_id, fastpath.ssrc(transceivers[0].sender))

    def _read_audio_levels(self) -> None:
        # The levels in the publisher's audio packets, for the room's active speakers.
        extension_id = audio_level_id(self.pc)
        transceivers = self.pc.getTransceivers()
        if extension_id is not None and transceivers:
            self._ingress(transceivers[0].receiver.transport).use_audio_level(extension_id)

    @property
    def transport_feedback(self) -> list[TransportFeedback]:
        """The recorders of the transports on which the client numbers its packets."""
        return [i.twcc for i in self._ingresses if i.twcc is not None]

    def send_transport_feedback(self) -> None:
        """Transport-cc feedback for what each publishing transport received since the last call
        (sfu.backend calls it every FEEDBACK_INTERVAL)."""
        for ingress in self._ingresses:
            if ingress.twcc is not None:
                for packet in ingress.twcc.build():
                    fastpath.send_rtcp(ingress.dtls, packet)

    def _on_track(self, track: MediaStreamTrack) -> None:
        # Emitted inside setRemoteDescription, before the receiver can start a decoder.
        receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
        sink = rtc_receiver.capture_encoded_frames(receiver)
        if track.kind == "video":
            # Once a bot takes frames (aiortc's receiver assembles them), a loss nothing repairs
            # would hold them for seconds (sfu.rtc.jitter).
            rtc_jitter.skip_lost_packets(receiver, keyframe_check)
        self._new_tracks.append((track, receiver, sink))

    def _ingress(self, dtls: RTCDtlsTransport) -> RtpIngress:
        for ingress in self._ingresses:
            if ingress.dtls is dtls:
                return ingress
        ingress = RtpIngress(dtls)
        ingress.feedback = self.downlink  # report blocks and REMBs: the client's bandwidth
        self._ingresses.append(ingress)
        return ingress

    def _publish_new_tracks(self) -> None:
        new, self._new_tracks = self._new_tracks, []
        for track, receiver, sink in new:
            transceiver = next(t for t in self.pc.getTransceivers() if t.receiver is receiver)
            track_id = self._msid_tracks.get(transceiver.mid or "", track.id)
            replaced = self._replaced.pop(track_id, None)
            if replaced is None and any(
                track_id in p.publications for p in self.room.participants.values()
            ):
                track_id = track.id  # an msid taken in the room: aiortc's own id is unique
            source, muted = self._described.pop(track_id, (None, False))
            if replaced is not None:
                source, muted = replaced.source, replaced.muted
            pub = Publication(
                track_id=track_id,
                publisher_id=self.id,
                track=track,
                transceiver=transceiver,
                sink=sink,
                ingress=self._ingress(receiver.transport),
                keyframe_interval=self.config.keyframe_interval,
                max_bitrate=self.config.max_bitrate,
                log=self.log,
                rids=self._simulcast.layers(transceiver.mid),
                source=source,
                muted=muted,
            )
            if replaced is not None and not _same_codec(replaced, pub):
                self._drop_publication(replaced)  # its subscribers' m-lines cannot take it
                replaced = None
            self.publications[pub.id] = pub
            self._publication_transceivers[pub.id] = transceiver
            if pub.simulcast:
                self._dynacast[pub.id] = Dynacast(tuple(layer.index for layer in pub.layers))
                pub.on_layers(self._update_dynacast)
            else:
                self._dynacast.pop(pub.id, None)
            if replaced is None:
                pub.log.info("published")
                self.room.publish(pub)
                continue
            pub.log.info("published again, on the rebuilt connection")
            self.room.republish(replaced, pub)
            replaced.close()

    def _unpublish_stopped_tracks(self) -> None:
        for pub_id, transceiver in list(self._publication_transceivers.items()):
            if transceiver.currentDirection in ("recvonly", "sendrecv"):
                continue
            del self._publication_transceivers[pub_id]
            self._dynacast.pop(pub_id, None)
            pub = self.publications.pop(pub_id)
            self.room.unpublish(pub)
            pub.close()

    # --- bandwidth and layers, every tick -------------------------------------------------------

    def tick(self, now: float) -> None:
        """Called every REPORT_INTERVAL (sfu.backend): the layers our bandwidth estimate allows
        the client's `auto` subscriptions, and the layers its publications should send."""
        self.downlink.tick(now)
        for pub in list(self.publications.values()):
            self._update_dynacast(pub, now)
        self._watch_path(now)

    def _update_dynacast(self, pub: Publication, now: float | None = None) -> None:
        dynacast = self._dynacast.get(pub.id)
        if dynacast is None or self.closed:
            return
        active = dynacast.update(pub.wanted(), time.monotonic() if now is None else now)
        if active is not None:
            layers = [LAYERS[rank] for rank in sorted(active)]
            pub.log.info("dynacast: the publisher sends %s", " ".join(layers) or "nothing")
            self.signals.publish_layers(pub.id, layers)

    def _schedule_renegotiation(self) -> None:
        if self.closed or not (self._to_add or self._to_remove):
            return
        self._spawn(self._renegotiate())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self.log.error("renegotiation failed", exc_info=exc)

    async def _renegotiate(self) -> None:
        async with self._lock:
            if self.closed or self.pc.signalingState != "stable":
                return  # the answer to the pending offer schedules us again
            if not (self._to_add or self._to_remove):
                return
            removed, self._to_remove = self._to_remove, []
            added, self._to_add = self._to_add, []
            for sub in removed:
                resume = sub.resume_point()
                sub.close()
                if sub.transceiver is not None:
                    sub.transceiver.direction = "inactive"
                    self._free_lines.append((sub.transceiver, resume))
            reused = 0
            for sub in added:
                line = self._take_free_line(sub)
                if line is None:
                    sub.attach(self.pc.addTransceiver(sub.track, direction="sendonly"))
                    continue
                transceiver, sub.resume_from = line
                transceiver.direction = "sendonly"
                transceiver.sender.replaceTrack(sub.track)  # its msid: the new track's
                sub.attach(transceiver)
                self._reused.append(sub)
                reused += 1
            if self.offers_data:
                rtc_datachannel.offer_data_channels(self.pc)
            await self.pc.setLocalDescription(await create_offer(self.pc))
            if self._relay_failed():
                return
            self._lean_rtcp()
            self.log.debug(
                "offering +%d -%d forwarded tracks (%d on m-lines reused)",
                len(added),
                len(removed),
                reused,
            )
            self.signals.send_offer(self._simulcast.describe(self.pc.localDescription.sdp))
            self.signals.send_candidate(None)

    def _take_free_line(
        self, sub: Subscription
    ) -> tuple[RTCRtpTransceiver, ResumePoint | None] | None:
        """An m-line whose track ended, negotiated inactive, of the subscription's kind and
        codec (its negotiated codecs are kept in later offers: sfu.rtc.offer)."""
        pub = sub.publication
        for i, (transceiver, resume) in enumerate(self._free_lines):
            codec = fastpath.negotiated_codec(transceiver)
            if (
                transceiver.kind == pub.kind
                and transceiver.currentDirection == "inactive"
                and codec is not None
                and codec.mimeType.lower() == pub.codec.mimeType.lower()
            ):
                del self._free_lines[i]
                return transceiver, resume
        return None

    # --- ICE restarts -----------------------------------------------------------------------

    def _watch_path(self, now: float) -> None:
        """Restart ICE from our side when the client has gone silent (counters read, no cost
        per packet): its RTP, and its RTCP, which every client sends each second or so while
        it sends or receives anything."""
        heard = (
            sum(pub.packets for pub in self.publications.values()),
            sum(ingress.heard for ingress in self._ingresses),
        )
        if heard != self._heard or self.pc.connectionState != "connected":
            if heard != self._heard:
                self._path_armed, self._path_retries = True, 0
            else:
                self._path_armed = False
            self._heard, self._heard_at = heard, now
            return
        if not self._path_armed or now - self._heard_at < DEAD_PATH_TIMEOUT:
            return
        self._path_armed = False  # one restart per silence: a client with nothing to say is fine
        if self.ice_restart.in_progress or self.closed:
            return
        self.log.info(
            "no media or RTCP from the client for %.1f s: restarting ICE", now - self._heard_at
        )
        if self.totals is not None:
            self.totals.dead_paths += 1
        self._spawn(self._restart_ice())

    async def _restart_ice(self) -> None:
        """Offer new ICE credentials (we may: we offer the forwarded tracks anyway)."""
        async with self._lock:
            if self.closed or self.pc.signalingState != "stable":
                return  # a negotiation is under way: the client's checks will tell
            if not await self._begin_ice_restart("server"):
                return
            await self.pc.setLocalDescription(await create_offer(self.pc))
            self._lean_rtcp()
            self.signals.send_offer(self._simulcast.describe(self.pc.localDescription.sdp))
            self.signals.send_candidate(None)

    async def _begin_ice_restart(self, side: str, retire: str | None = None) -> bool:
        """Under the lock. False when ICE cannot restart in place: the connection is rebuilt
        (`retire`: a description of the old connection, whose credentials to drop)."""
        self._restart_side = side
        self._fresh_ice_servers()
        if await self.ice_restart.begin():
            self.log.info("ICE restart (%s side): new credentials, in place", side)
            return True
        # DTLS or ICE already gone: nothing to restart. A new connection, the session kept.
        if retire is not None and (ufrag := remote_ufrag(retire)) is not None:
            self._retired_ufrags.add(ufrag)
        await self._rebuild(side, "ICE cannot restart in place (the connection is gone)")
        return False

    def _fresh_ice_servers(self) -> None:
        """Turn-only: a restart makes a new TURN allocation, and the credentials our connection
        was made with may have expired (TURN_TTL) while their allocation lived on."""
        servers = self.config.ice.server_servers(self.id, time.time())
        if servers:
            set_ice_servers(self.pc, rtc_configuration(servers, self.config.ice.mode))

    def _on_ice_switched(self) -> None:
        # Follow the new pair at once, rather than at the next report tick.
        for ingress in self._ingresses:
            ingress.install()
        now = asyncio.get_running_loop().time()
        self._path_armed, self._heard_at = True, now  # the new path gets its own silence
        for sub in list(self.subscriptions.values()):
            sub.report(now)
        for pub in list(self.publications.values()):
            pub.request_keyframe()  # what subscribers lost while the path was dead

    def _on_ice_restart_done(self, succeeded: bool, seconds: float) -> None:
        side = self._restart_side
        if succeeded:
            self.log.info("recovered: ICE restart (%s side, in place) took %.3f s", side, seconds)
            self._count_restart(side, "in_place")
        else:
            self.log.warning("ICE restart (%s side) failed after %.3f s", side, seconds)
            if self.totals is not None:
                self.totals.ice_restart_failures[side] += 1
            if side == "server" and self._path_retries < DEAD_PATH_RETRIES:
                # Still silent: try again after another DEAD_PATH_TIMEOUT.
                self._path_retries += 1
                self._path_armed, self._heard_at = True, asyncio.get_running_loop().time()

    def _count_restart(self, side: str, path: str) -> None:
        if self.totals is not None:
            self.totals.ice_restarts[(side, path)] += 1

    # --- rebuilds: a new peer connection, the session kept ----------------------------------------

    def _new_peer_connection(self) -> RTCPeerConnection:
        servers = self.config.ice.server_servers(self.id, time.time())
        pc = RTCPeerConnection(rtc_configuration(servers, self.config.ice.mode))
        pc.on("track", self._on_track)
        pc.on("datachannel", self.data.attach)
        pc.on("connectionstatechange", lambda: self._on_connection_state(pc))
        self.ice_restart = IceRestart(pc, self._on_ice_switched, self._on_ice_restart_done)
        self._connected_once = False  # a connection that never came up is not rebuilt
        return pc

    async def _rebuild_soon(self, reason: str) -> None:
        async with self._lock:
            if self._connected_once:
                await self._rebuild("server", reason)
            elif not self.closed:
                # Its path never worked (a firewall, a refused relay): a new connection would
                # meet the same; the client starts over, with its own backoff.
                self.signals.media_failed(reason)

    async def _rebuild(self, side: str, reason: str) -> None:
        """Under the lock. Replace the peer connection, keeping the session, as LiveKit's full
        reconnect does but with the same peer_id and nothing seen by the others: the client
        is told (`rebuild`) and makes a new connection of its own; its publications wait for
        their tracks to come back on it (Publication ids are msid track ids: the same tracks
        keep them, and their subscribers keep their m-lines); what it received is offered
        again on the new connection. Bounded (REBUILD_ATTEMPTS); beyond, `media_failed`."""
        if self.closed:
            return
        now = time.monotonic()
        self._rebuilds = [t for t in self._rebuilds if now - t < REBUILD_WINDOW]
        if len(self._rebuilds) >= REBUILD_ATTEMPTS:
            self.log.warning(
                "%s; %d rebuilds in %g s: giving up", reason, len(self._rebuilds), REBUILD_WINDOW
            )
            self.signals.media_failed(reason)
            return
        self._rebuilds.append(now)
        if self._rebuilding is None:
            self._rebuilding = (side, now)
        self.log.warning("%s: rebuilding the peer connection (%s side)", reason, side)
        old, old_restart = self.pc, self.ice_restart
        if old.remoteDescription is not None and (ufrag := remote_ufrag(old.remoteDescription.sdp)):
            self._retired_ufrags.add(ufrag)
        # Its publications stay in the room, silent, until their tracks come back.
        self._replaced.update(self.publications)
        self._publication_transceivers.clear()
        for ingress in self._ingresses:
            ingress.close()
        self._ingresses.clear()
        # What it receives: offered again, on the new connection.
        for sub in self._to_remove:
            sub.close()
        self._to_remove.clear()
        self._to_add.clear()
        for pub_id, sub in list(self.subscriptions.items()):
            self.subscriptions[pub_id] = self._renewed(sub, sub.publication)
            sub.close()
            self._to_add.append(self.subscriptions[pub_id])
        self._free_lines.clear()
        self._reused.clear()
        self._new_tracks.clear()
        self._early_candidates.clear()
        self._discarding_candidates = False
        self._candidates = 0
        self._simulcast = SimulcastNegotiation()
        self._msid_tracks.clear()
        self._awaiting_rebuilt = True
        await old_restart.abandon()
        self.pc = self._new_peer_connection()
        self._tell_rebuild(reason)
        await old.close()
        asyncio.get_running_loop().call_later(REBUILD_DEADLINE, self._rebuild_overdue, self.pc)
        self._schedule_renegotiation()

    def _tell_rebuild(self, reason: str) -> None:
        servers = self.config.ice.client_servers(self.id, time.time())  # fresh TURN credentials
        self.signals.rebuild(reason, servers)

    def _renewed(self, sub: Subscription, publication: Publication) -> Subscription:
        """A subscription taking `sub`'s place, with what the subscriber asked of it."""
        fresh = Subscription(publication, self.id)
        fresh.on_layer = self._on_layer
        if sub.preferred is not None:
            fresh.set_preferred(sub.preferred)
        return fresh

    def _rebuilt(self) -> None:
        """The connection is up: the end of a rebuild, if one was in progress."""
        if self._rebuilding is None:
            return
        side, began = self._rebuilding
        self._rebuilding = None
        seconds = time.monotonic() - began
        self.log.info("recovered: ICE restart (%s side, rebuilt) took %.3f s", side, seconds)
        self._count_restart(side, "rebuilt")

    def _rebuild_overdue(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc or self.closed:
            return
        # Publications whose tracks did not come back: gone.
        for pub in list(self._replaced.values()):
            self._replaced.pop(pub.id)
            self._drop_publication(pub)
        if (
            self._rebuilding is not None
            and pc.connectionState != "connected"
            and (pc.getTransceivers())
        ):
            self.signals.media_failed("the rebuilt media connection did not come up")

    def _drop_publication(self, pub: Publication) -> None:
        if self.publications.get(pub.id) is pub:
            del self.publications[pub.id]
        self._publication_transceivers.pop(pub.id, None)
        self._dynacast.pop(pub.id, None)
        self.room.unpublish(pub)
        pub.close()

    def resubscribe(self, old: Publication, new: Publication) -> None:
        """`old`'s publisher rebuilt its connection and `new` carries the same track: forward
        it on the m-line `old` had, the stream going on where it stopped (same SSRC)."""
        sub = self.subscriptions.get(old.id)
        if self.closed or sub is None or sub.publication is not old:
            self.subscribe(new)
            return
        fresh = self.subscriptions[new.id] = self._renewed(sub, new)
        if sub in self._to_add:  # never offered: offer the new one instead
            self._to_add[self._to_add.index(sub)] = fresh
            sub.close()
            return
        transceiver, resume, ready = sub.transceiver, sub.resume_point(), sub.ready
        pending = sub in self._reused
        sub.close()
        if transceiver is None:
            return
        fresh.resume_from = resume
        transceiver.sender.replaceTrack(fresh.track)
        fresh.attach(transceiver)
        if pending:
            self._reused[self._reused.index(sub)] = fresh
        elif ready:
            fresh.sender_started()  # its m-line sends already: no negotiation

    def _retired(self, sdp: str, kind: str) -> bool:
        """A description of a connection a rebuild replaced (it crossed our `rebuild`)."""
        if remote_ufrag(sdp) not in self._retired_ufrags:
            return False
        self.log.info("ignored an %s for the replaced connection", kind)
        return True

    def _of_replaced_connection(self, candidate: CandidateInit | None) -> bool:
        # Its end-of-candidates would end the new connection's before it began.
        if candidate is None:
            return True
        match = _CANDIDATE_UFRAG.search(candidate.candidate)
        return match is not None and match.group(1) in self._retired_ufrags

    def _relay_failed(self) -> bool:
        """In turn-only mode our own TURN allocation must work, or the client waits for ever."""
        reason = turn_failure(self.pc)
        if reason is None:
            return False
        self.log.warning("no TURN relay: %s", reason)
        self.signals.media_failed(f"the server's TURN relay is unavailable: {reason}")
        return True

    def _on_connection_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self.pc:
            return  # a connection replaced by a rebuild
        state = pc.connectionState
        self.log.info("connection %s", state)
        if self.closed:
            return
        if state == "connected":
            self._connected_once = True
            self._rebuilt()
        # aioice ends a connection whose consent expired (~30 s without answers) by closing it,
        # and aiortc then closes the whole peer connection: `closed`, never `failed`. Either way
        # this connection has no media left: a new one, while the session lives.
        elif state == "failed":
            self._spawn(self._rebuild_soon("the media connection failed (ICE or DTLS)"))
        elif state == "closed":
            self._spawn(self._rebuild_soon("the media connection closed (ICE consent expired)"))


def _same_codec(old: Publication, new: Publication) -> bool:
    return old.kind == new.kind and old.codec.mimeType.lower() == new.codec.mimeType.lower()
