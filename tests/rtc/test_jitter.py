"""Hook: sfu.rtc.jitter (aiortc's video jitter buffer skips a hole no retransmission fills)."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

from sfu.payload import keyframe_check
from sfu.rtc import jitter

# aiortc would otherwise gather from Google's STUN server.
NO_ICE_SERVERS = RTCConfiguration(iceServers=[])

KEY = b"key"
DELTA = b"delta"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def buffer() -> tuple[jitter.SkippingJitterBuffer, Clock]:
    clock = Clock()
    checks = {96: lambda payload: payload == KEY}
    return jitter.SkippingJitterBuffer(512, lambda pt: checks[pt], clock=clock), clock


def packet(seq: int, frame: int, payload: bytes = DELTA) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=3000 * frame, payload=payload)
    p._data = payload  # type: ignore[attr-defined]  # what the receiver's depayloader sets
    return p


def feed(
    buf: jitter.SkippingJitterBuffer, clock: Clock, packets: list[RtpPacket]
) -> tuple[list[int], int]:
    """(the frames given out, by number; PLIs asked for), one packet every 10 ms (a frame every
    20 ms)."""
    frames: list[JitterFrame] = []
    plis = 0
    for p in packets:
        clock.now += 0.01
        pli, frame = buf.add(p)
        plis += pli
        if frame is not None:
            frames.append(frame)
    return [f.timestamp // 3000 for f in frames], plis


def stream(first_frame: int, frames: int, key_at: int | None = None) -> list[RtpPacket]:
    """Two packets a frame, sequence numbers 2 * frame and 2 * frame + 1."""
    out = []
    for n in range(first_frame, first_frame + frames):
        first = KEY if n == key_at else DELTA
        out += [packet(2 * n, n, first), packet(2 * n + 1, n)]
    return out


def test_a_hole_filled_in_time_is_waited_for() -> None:
    buf, clock = buffer()
    packets = stream(0, 10, key_at=0)
    lost = packets.pop(7)  # frame 3's second packet
    frames, _ = feed(buf, clock, packets[:10])
    assert frames == [0, 1, 2]
    frames, plis = feed(buf, clock, [lost, *packets[10:]])  # resent 0.03 s later
    assert frames == [3, 4, 5, 6, 7, 8] and plis == 0 and buf.skips == 0


def test_each_hole_gets_its_own_deadline() -> None:
    buf, clock = buffer()
    packets = stream(0, 40, key_at=0)
    late = packets.pop(7)  # frame 3's second packet, resent 0.05 s later
    frames, _ = feed(buf, clock, [*packets[:12], late, *packets[12:20]])
    assert frames == list(range(10)) and buf.skips == 0
    clock.now += 10.0  # a long quiet while, then another hole: it waits its own deadline
    second = packets[20:]
    lost = second.pop(3)
    frames, _ = feed(buf, clock, second[:6])
    assert buf.skips == 0, "skipped at once, on the first hole's clock"
    frames, plis = feed(buf, clock, [lost, *second[6:]])
    assert buf.skips == 0 and plis == 0


def test_a_hole_never_filled_goes_on_from_the_next_keyframe() -> None:
    buf, clock = buffer()
    packets = stream(0, 30, key_at=0)
    key = stream(30, 20, key_at=30)
    del packets[7]
    frames, plis = feed(buf, clock, packets)  # 0.5 s of packets behind the hole
    assert frames == [0, 1, 2] and buf.skips == 1 and plis == 1  # dropped all, asked for one
    frames, plis = feed(buf, clock, key)
    assert frames == list(range(30, 49)) and plis == 0


def test_a_hole_with_a_keyframe_behind_it_skips_to_it() -> None:
    buf, clock = buffer()
    packets = stream(0, 5, key_at=0) + stream(5, 40, key_at=5)
    del packets[7]
    frames, plis = feed(buf, clock, packets)
    # Frames 3 and 4 lost their references: the buffer goes on at frame 5's keyframe.
    assert frames[:3] == [0, 1, 2] and frames[3] == 5 and buf.skips == 1 and plis == 0


def test_a_keyframe_whose_first_packet_comes_last_starts_the_buffer() -> None:
    buf, clock = buffer()
    packets = stream(0, 30, key_at=0)
    del packets[7]
    feed(buf, clock, packets)  # skipped: waiting for a keyframe
    key = stream(30, 10, key_at=30)
    first = key.pop(0)  # lost on the way, resent after the rest of the keyframe came
    frames, _ = feed(buf, clock, [*key[:3], first, *key[3:]])
    assert frames[:1] == [30] and frames == list(range(30, 39))


def test_while_waiting_for_a_keyframe_it_asks_again_now_and_then() -> None:
    buf, clock = buffer()
    packets = stream(0, 100, key_at=0)
    del packets[7]
    frames, plis = feed(buf, clock, packets)  # 2 s of deltas behind the hole
    assert frames == [0, 1, 2] and plis == 3  # 0.5 s after the hole, then every 0.5 s


async def test_the_hook_replaces_the_video_receivers_buffer() -> None:
    pc = RTCPeerConnection(NO_ICE_SERVERS)
    try:
        receiver = pc.addTransceiver("video").receiver
        buf = jitter.skip_lost_packets(receiver, keyframe_check)
        assert jitter.installed(receiver) is buf
        assert buf.capacity == jitter.VIDEO_CAPACITY  # aiortc's own, kept
    finally:
        await pc.close()


def test_after_an_outage_a_hole_is_not_waited_for() -> None:
    buf, clock = buffer()
    packets = stream(0, 60, key_at=0)
    frames, _ = feed(buf, clock, packets[:20])
    assert frames == list(range(9))
    clock.now += 5.0  # a blackout: frames 10-29 lost, and the rest of frame 9
    frames, plis = feed(buf, clock, packets[60:62])
    assert buf.skips == 1 and plis == 1, "a keyframe asked for with the first packet back"
    packets += stream(60, 3, key_at=61)
    frames, plis = feed(buf, clock, packets[120:])
    assert frames == [61] and buf.skips == 1  # 62 goes out with the next frame


def test_after_an_outage_a_keyframe_behind_the_hole_is_decoded_at_once() -> None:
    buf, clock = buffer()
    packets = stream(0, 40, key_at=0)
    packets += stream(40, 3, key_at=40)
    frames, _ = feed(buf, clock, packets[:20])
    clock.now += 2.0
    frames, plis = feed(buf, clock, packets[80:])
    assert frames == [40, 41] and plis == 0 and buf.skips == 1


def test_after_an_outage_longer_than_the_buffer_a_keyframe_at_the_head_just_plays() -> None:
    buf, clock = buffer()
    packets = stream(0, 10, key_at=0)
    frames, _ = feed(buf, clock, packets)
    clock.now += 5.0  # the stream comes back 2000 packets on: aiortc's buffer starts there
    frames, _ = feed(buf, clock, stream(1000, 3, key_at=1000))
    assert frames == [1000, 1001] and buf.skips == 0
