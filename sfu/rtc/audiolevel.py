"""Hook: which id a publisher's RFC 6464 audio-level header extension was negotiated with.

aiortc negotiates `urn:ietf:params:rtp-hdrext:ssrc-audio-level` on audio m-lines (it is in its
`HEADER_EXTENSIONS`, with the remote's id kept in the answer), and its own sender fills it in
from each AudioFrame it encodes (not for pre-encoded packets). The negotiated id is only on the
transceiver (`_headerExtensions`); the ingress reads the extension with it (sfu.rtc.ingress).
Browsers number a URI the same on every m-line of a bundle, so one id serves the transport.
"""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters

URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def audio_level_id(pc: RTCPeerConnection) -> int | None:
    """The audio-level extension's id on the audio m-lines the remote sends on, if any."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind != "audio" or transceiver.currentDirection not in (
            "recvonly",
            "sendrecv",
        ):
            continue
        extensions: list[RTCRtpHeaderExtensionParameters] = transceiver._headerExtensions
        for extension in extensions:
            if extension.uri == URI:
                return extension.id
    return None
