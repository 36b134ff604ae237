"""Active speakers: a bot playing a tone and one sending silence (aiortc's sender puts each frame's
level in the RFC 6464 extension); the others are told who speaks, and the ranking follows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sfu.client import Client
from sfu.media import ToneTrack
from sfu.server import RunningServer
from sfu.speakers import TICK, ActiveSpeakers, AudioLevel
from tests.conftest import MakeClient
from tests.sfu.test_metrics import scrape, value
from tests.util import eventually


def fill(level: AudioLevel, *dbov: int) -> AudioLevel:
    for each in dbov:
        level.add(each)
    return level


def test_ranking_is_by_level_and_told_only_when_it_changes() -> None:
    speakers, a, b = ActiveSpeakers(), AudioLevel(), AudioLevel()
    mics = [("a", a, False), ("b", b, False)]
    fill(a, 20, 20)
    fill(b, 10, 10)
    first = speakers.tick(0.0, mics)
    assert first is not None and [s.peer_id for s in first] == ["b", "a"]
    assert 0 < first[1].level < first[0].level <= 1
    fill(a, 20)
    fill(b, 10)
    assert speakers.tick(TICK, mics) is None  # same order: nothing to tell
    fill(a, 10)
    assert speakers.tick(TICK * 1.5, mics) is None  # too soon: no tick, levels kept
    fill(b, 30)
    changed = speakers.tick(TICK * 2, mics)
    assert changed is not None and [s.peer_id for s in changed] == ["a", "b"]
    assert speakers.changes == 2


def test_silence_clicks_and_mutes_are_not_speech() -> None:
    speakers, a = ActiveSpeakers(), AudioLevel()
    assert speakers.tick(0.0, [("a", fill(a, 127, 127, 127), False)]) is None
    # One loud packet among a tick of silence: its mean stays far below the threshold.
    assert speakers.tick(TICK, [("a", fill(a, 0, *[127] * 11), False)]) is None
    muted = speakers.tick(TICK * 2, [("a", fill(a, 10, 10), True)])
    assert muted is None and speakers.ranking == ()


def test_a_speaker_fades_out_over_quiet_ticks() -> None:
    speakers, a = ActiveSpeakers(), AudioLevel()
    now = 0.0
    assert speakers.tick(now, [("a", fill(a, 10), False)]) is not None
    quiet_ticks = 0
    while speakers.ranking:
        now += TICK
        quiet_ticks += 1
        speakers.tick(now, [("a", a, False)])  # no packet at all (DTX, or gone)
    # Held through a pause between two words, gone within a couple of seconds.
    assert 2 <= quiet_ticks <= 8


PACKET = 0.02  # an Opus packet every 20 ms, each with its level
TONE, SILENCE = 20, 127  # dBov: a voice, and silence


class Call:
    """Two microphones' packets and the room's ticks on a clock of their own: how soon the
    ranking follows, whatever the load of the machine that runs the test."""

    def __init__(self) -> None:
        self.speakers, self.now = ActiveSpeakers(), 0.0
        self.levels = {"a": AudioLevel(), "b": AudioLevel()}

    def until(self, done: Callable[[tuple[str, ...]], bool], a: int, b: int) -> float:
        """Play a and b at these levels until done(ranking); returns how long it took."""
        start = self.now
        while not done(self.speakers.ranking):
            assert self.now - start < 5.0, f"ranking {self.speakers.ranking}"
            self.now += PACKET
            self.levels["a"].add(a)
            self.levels["b"].add(b)
            self.speakers.tick(self.now, [(p, level, False) for p, level in self.levels.items()])
        return self.now - start


def test_the_ranking_follows_who_plays_within_a_second() -> None:
    """The live test's steps (below), timed on the server's own clock."""
    call = Call()
    assert call.until(lambda r: r == ("a",), a=TONE, b=SILENCE) <= TICK + PACKET
    call.until(lambda r: r == (), a=SILENCE, b=SILENCE)
    assert call.until(lambda r: r[:1] == ("b",), a=SILENCE, b=TONE) < 1.0
    call.until(lambda r: r == ("b", "a"), a=TONE + 5, b=TONE)  # both, the louder first
    # b stops: a, quieter, leads within a second (b's release does not hold it back)...
    assert call.until(lambda r: r[:1] == ("a",), a=TONE + 5, b=SILENCE) < 1.0
    # ...and b leaves the ranking soon after.
    assert call.until(lambda r: r == ("a",), a=TONE + 5, b=SILENCE) < 2.0


def ranking(client: Client) -> list[str]:
    return [s.peer_id for s in client.active_speakers]


async def until_ranked(client: Client, first: str, timeout: float = 10.0) -> None:
    """Until `first` leads the ranking `client` was sent."""
    await eventually(
        lambda: "" if ranking(client)[:1] == [first] else f"ranking {ranking(client)}",
        timeout=timeout,
    )


async def test_the_tone_is_named_and_the_ranking_follows_who_plays(
    server: RunningServer, make_client: MakeClient
) -> None:
    alice = await make_client("voices", name="alice")
    bob = await make_client("voices", name="bob")
    carol = await make_client("voices", name="carol")
    alice_tone, bob_tone = ToneTrack(440), ToneTrack(660)
    bob_tone.playing = False
    await alice.publish(alice_tone)
    await bob.publish(bob_tone)
    assert alice.peer_id and bob.peer_id and carol.peer_id
    # Both send audio (the server counts it) and only alice is loud.
    room = server.backend.rooms["voices"]

    def both_flowing() -> str:
        counts = [
            pub.packets for p in room.participants.values() for pub in p.publications.values()
        ]
        return "" if len(counts) == 2 and min(counts) > 10 else f"packets {counts}"

    await eventually(both_flowing, timeout=10)
    await until_ranked(carol, alice.peer_id)
    assert ranking(carol) == [alice.peer_id]
    assert ranking(alice) == [alice.peer_id]  # the speaker is told too (a page highlights itself)
    assert 0 < carol.active_speakers[0].level <= 1

    # Silence, then bob plays: he is named, and alice drops out soon after. (Within a second on
    # the server's clock: test_the_ranking_follows_who_plays_within_a_second; here, on a shared
    # machine, the deadlines are generous.)
    alice_tone.playing = False
    await eventually(lambda: "" if not ranking(carol) else f"ranking {ranking(carol)}", 10)
    bob_tone.playing = True
    await until_ranked(carol, bob.peer_id)
    alice_tone.playing = True  # both: the louder first, both listed
    await eventually(lambda: "" if len(ranking(carol)) == 2 else f"ranking {ranking(carol)}", 10)
    bob_tone.playing = False
    await until_ranked(carol, alice.peer_id)
    await eventually(lambda: "" if ranking(carol) == [alice.peer_id] else f"{ranking(carol)}", 10)
    # Five rankings at least: alice, nobody, bob, both (either first), alice alone.
    assert value(await scrape(server), "aiosfu_active_speaker_changes_total") >= 5


async def test_a_muted_microphone_speaks_to_nobody(make_client: MakeClient) -> None:
    alice = await make_client("hushed", name="alice")
    carol = await make_client("hushed", name="carol")
    tone = ToneTrack()
    await alice.publish(tone)
    assert alice.peer_id
    await until_ranked(carol, alice.peer_id)
    await alice.mute(tone)
    await eventually(lambda: "" if not ranking(carol) else f"ranking {ranking(carol)}", 5)
    await asyncio.sleep(0.5)
    assert ranking(carol) == []


async def test_screen_audio_is_not_a_speaker(make_client: MakeClient) -> None:
    alice = await make_client("film", name="alice")
    carol = await make_client("film", name="carol")
    await alice.publish(ToneTrack(), source="screen")
    remote = await carol.next_track()
    assert remote.source == "screen_audio"
    await asyncio.sleep(1.5)  # several ticks with a loud track
    assert carol.active_speakers == [] and not carol.speakers_changed.is_set()
