"""InboundStream: what the server knows of one RTP stream a publisher sends it.

The receive-side state that aiortc's receiver would otherwise keep, for the lean path
(sfu.publication): RFC 3550 reception statistics (A.3 expected and lost packets, A.8
interarrival jitter) for the receiver reports the publisher gets, and the sequence numbers still
missing, which the publisher is asked to resend (NACK) a few times while they can still help.
`add()` runs once per packet: arithmetic only, since gaps are rare.

`unrepaired` counts the gaps that are lost for good: a packet asked for NACK_TRIES times (at the
gap, then on two report ticks, so 0.5-0.75 s after it), or a jump too long to ask for. What
follows such a gap cannot be decoded: the publication then has its subscribers wait for the next
keyframe and asks for one (sfu.publication), off the packet path.
"""

from __future__ import annotations

MAX_GAP = 256  # a jump longer than this is a restart of the stream, not loss worth a NACK
MAX_MISSING = 512  # sequence numbers tracked as missing; the oldest are given up first
NACK_TRIES = 3  # times one lost packet is asked for: at the gap, then on two report ticks


class InboundStream:
    __slots__ = (
        "base_seq",
        "clock_rate",
        "cycles",
        "expected_prior",
        "jitter_q4",
        "last_timestamp",
        "last_transit",
        "max_seq",
        "missing",
        "received",
        "received_prior",
        "ssrc",
        "unrepaired",
    )

    def __init__(self, ssrc: int, clock_rate: int, first_seq: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.base_seq = first_seq
        self.max_seq = (first_seq - 1) & 0xFFFF  # so that the first add() is in order
        # ...and when that is a wrap (first_seq 0), the cycle it counts is not a real one.
        self.cycles = -0x10000 if first_seq == 0 else 0
        self.received = 0
        self.jitter_q4 = 0  # jitter in RTP clock units, times 16 (as RFC 3550 A.8 keeps it)
        self.last_transit: int | None = None
        self.last_timestamp = -1
        self.expected_prior = 0
        self.received_prior = 0
        self.missing: dict[int, int] = {}  # sequence number -> NACKs sent for it
        self.unrepaired = 0  # gaps lost for good (see the module doc)

    def add(self, seq: int, timestamp: int, arrival: float) -> list[int] | None:
        """Count a packet that arrived at `arrival` (seconds, any fixed origin).

        Returns the sequence numbers it shows missing when it jumps ahead (to NACK), else None.
        """
        self.received += 1
        delta = (seq - self.max_seq) & 0xFFFF
        if delta == 0 or delta >= 0x8000:
            # A duplicate, or late: if it was missing, it no longer is.
            self.missing.pop(seq, None)
            return None
        if seq < self.max_seq:
            self.cycles += 0x10000
        gap = self._gap(delta) if delta > 1 else None
        self.max_seq = seq
        if timestamp != self.last_timestamp:
            # Jitter from the first packet of each frame: a frame's packets share a timestamp
            # but leave the sender as a burst, which is not network jitter.
            transit = int(arrival * self.clock_rate) - timestamp
            last = self.last_transit
            if last is not None:
                d = ((transit - last + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                self.jitter_q4 += abs(d) - ((self.jitter_q4 + 8) >> 4)
            self.last_transit = transit
            self.last_timestamp = timestamp
        return gap

    def _gap(self, delta: int) -> list[int] | None:
        if delta - 1 > MAX_GAP:
            self.unrepaired += 1
            return None
        lost = [(self.max_seq + i) & 0xFFFF for i in range(1, delta)]
        missing = self.missing
        for s in lost:
            missing[s] = 1
        if len(missing) > MAX_MISSING:
            self.unrepaired += 1
            while len(missing) > MAX_MISSING:
                del missing[next(iter(missing))]
        return lost

    def recovered(self, seq: int) -> bool:
        """A retransmission (RTX) brought `seq`: True when it filled a hole."""
        if self.missing.pop(seq, None) is None:
            return False
        self.received += 1
        return True

    def nack_again(self) -> list[int]:
        """Sequence numbers to ask for once more; those asked for NACK_TRIES times are dropped."""
        again: list[int] = []
        given_up = 0
        for seq, tries in list(self.missing.items()):
            if tries >= NACK_TRIES:
                del self.missing[seq]
                given_up += 1
            else:
                self.missing[seq] = tries + 1
                again.append(seq)
        if given_up:
            self.unrepaired += 1
        return again

    @property
    def highest_sequence(self) -> int:
        """The extended highest sequence number received (cycles in the top 16 bits)."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.highest_sequence - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative when duplicates outnumber losses, as RFC 3550 says)."""
        return self.expected - self.received

    @property
    def jitter(self) -> int:
        return self.jitter_q4 >> 4

    def fraction_lost(self) -> int:
        """Lost share of the packets expected since the last call, in 256ths (an RR's field)."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior, self.received_prior = expected, self.received
        lost_interval = expected_interval - received_interval
        if expected_interval <= 0 or lost_interval <= 0:
            return 0
        return min(255, (lost_interval << 8) // expected_interval)
