"""GStreamer webrtcbin 1.22 against the real server: a client nobody on this project wrote, with an
RSA DTLS certificate, an offer with no m-lines at start, and no way to take end-of-candidates."""

from __future__ import annotations

from sfu.media import TestPatternTrack
from sfu.rtc import dtls as rtc_dtls
from sfu.server import RunningServer
from tests.conftest import MakeClient
from tests.gstreamer.conftest import StartGstPeer
from tests.gstreamer.gstpeer import GstPeer
from tests.util import eventually, recv


async def welcomed(peer: GstPeer) -> str:
    def check() -> str:
        return "" if peer.peer_id else f"not welcomed: {peer.describe()}"

    await eventually(check, timeout=15)
    assert peer.peer_id is not None
    return peer.peer_id


async def decodes(peer: GstPeer, publisher: str, more_than: int, timeout: float = 20) -> int:
    """Waits until `peer` has decoded more than `more_than` frames of `publisher`'s video."""

    def check() -> str:
        count = peer.frames.get(publisher, 0)
        if count > more_than:
            return ""
        return (
            f"{count} frames of {publisher} decoded, waiting for > {more_than}: {peer.describe()}"
        )

    await eventually(check, timeout=timeout, interval=0.1)
    return peer.frames[publisher]


async def test_webrtcbin_publishes_and_a_python_client_decodes(
    server: RunningServer, make_client: MakeClient, gst_peer: StartGstPeer
) -> None:
    viewer = await make_client("gst-pub", name="viewer")
    gst = await gst_peer("gst-pub", "webrtcbin", publish=True)
    gst_id = await welcomed(gst)

    remote = await viewer.next_track(timeout=20)
    assert (remote.peer_id, remote.kind) == (gst_id, "video")
    for _ in range(10):
        frame = await recv(remote.track, 15)
    assert (frame.width, frame.height) == (320, 240)

    # webrtcbin's certificate is RSA and the server, answering, is the DTLS client (sfu.rtc.dtls).
    (on_server,) = [p for p in server.backend.participants() if p.id == gst_id]
    dtls = on_server.pc.getTransceivers()[0].receiver.transport
    cipher = rtc_dtls.selected_cipher(dtls)
    assert cipher is not None and cipher.startswith("ECDHE-RSA-"), cipher
    # webrtcbin 1.22 offers only the AES-CM profiles: the fallback the server keeps for it.
    assert rtc_dtls.selected_profile(dtls) == "SRTP_AES128_CM_SHA1_80"
    assert not gst.errors and not viewer.errors, (gst.errors, viewer.errors)


async def test_webrtcbin_receives_through_renegotiations(
    make_client: MakeClient, gst_peer: StartGstPeer
) -> None:
    gst = await gst_peer("gst-sub", "webrtcbin")
    await welcomed(gst)
    # With nothing to send, webrtcbin offers no m-lines as soon as it starts: that gets an answer.
    await eventually(lambda: "" if gst.count("offer_sent", m_lines=0) else gst.describe())

    alice = await make_client("gst-sub", name="alice")
    await alice.publish(TestPatternTrack(320, 240, fps=15))
    assert alice.peer_id is not None
    await decodes(gst, alice.peer_id, 10)
    assert gst.sizes[alice.peer_id] == (320, 240)

    # A second publisher joins: the server offers one more m-line, webrtcbin answers it.
    bob = await make_client("gst-sub", name="bob")
    await bob.publish(TestPatternTrack(240, 160, fps=15))
    assert bob.peer_id is not None
    bob_frames = await decodes(gst, bob.peer_id, 10)
    assert gst.sizes[bob.peer_id] == (240, 160)

    # The first leaves: its m-line goes inactive in the next offer; bob's video keeps decoding.
    answers = gst.count("answer_sent")
    await alice.close()
    await eventually(lambda: "" if gst.count("answer_sent") > answers else gst.describe())
    alice_frames = gst.frames[alice.peer_id]
    await decodes(gst, bob.peer_id, bob_frames + 30)
    assert gst.frames[alice.peer_id] <= alice_frames + 2  # at most what was on its way

    # A webrtcbin joining a room where someone publishes: its offer with no m-lines usually
    # crosses the server's first offer, which it cannot take (no rollback in 1.22); the server
    # answers it anyway and offers again (sfu.participant).
    late = await gst_peer("gst-sub", "late webrtcbin")
    await decodes(late, bob.peer_id, 10)
    assert not gst.errors and not late.errors and not bob.errors, (gst.errors, late.errors)
