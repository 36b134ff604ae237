"""Hook: accept transport-wide congestion control on the m-lines a client publishes on.

aiortc negotiates only the header extensions it lists itself (`aiortc.codecs.HEADER_EXTENSIONS`:
mid and abs-send-time for video), and only the RTCP feedback its codecs list (nack, pli,
goog-remb): a browser's offer of transport-cc is dropped from the answer, so the browser never
numbers its packets and estimates its uplink from our REMB and receiver reports alone.

`accept_transport_cc(pc)`, called between `setRemoteDescription(offer)` and `createAnswer()`,
adds the extension (with the browser's id) and the `transport-cc` feedback to every transceiver
the client sends on, where its offer has them. aiortc's receive parameters and its answer are
both built from the transceiver afterwards, so the answer carries them and aiortc's parser reads
the number on the packets that still take its path. Offers we send ourselves do not get it: a
subscriber's estimate reaches us as REMB (see sfu.bwe).
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpHeaderExtensionParameters
from aiortc.sdp import SessionDescription

from .twcc import URI

FEEDBACK = RTCRtcpFeedback(type="transport-cc")


def accept_transport_cc(pc: RTCPeerConnection) -> int | None:
    """Accept transport-cc where the remote offer has it; returns its extension id, if any.

    The id is the browser's, one for the whole bundle (browsers number a URI the same on every
    m-line): the ingress reads it from every packet of the transport.
    """
    remote = pc.remoteDescription
    if remote is None or remote.type != "offer":
        return None
    media_by_mid = {m.rtp.muxId: m for m in SessionDescription.parse(remote.sdp).media}
    found: int | None = None
    for transceiver in pc.getTransceivers():
        media = media_by_mid.get(transceiver.mid) if transceiver.mid is not None else None
        if media is None or media.direction not in ("sendonly", "sendrecv"):
            continue
        offered = next((e for e in media.rtp.headerExtensions if e.uri == URI), None)
        if offered is None:
            continue
        extensions = [e for e in transceiver._headerExtensions if e.uri != URI]
        extensions.append(RTCRtpHeaderExtensionParameters(id=offered.id, uri=URI))
        transceiver._headerExtensions = extensions
        with_feedback = {c.payloadType for c in media.rtp.codecs if FEEDBACK in c.rtcpFeedback}
        for codec in transceiver._codecs:
            if (
                not is_rtx(codec)
                and codec.payloadType in with_feedback
                and FEEDBACK not in codec.rtcpFeedback
            ):
                codec.rtcpFeedback.append(FEEDBACK)
        if found is None:
            found = offered.id
    return found
