"""Resume (signaling.resume): a participant outlives its socket for the grace period, and a `join`
with its token gets it back: same peer_id, nothing seen by the others, what was missed sent again.
Over real sockets, in front of the hub tests' fake media backend."""

from __future__ import annotations

import asyncio

import pytest

from signaling import protocol as p
from signaling.protocol import ErrorCode
from signaling.resume import ResumeDesk
from tests.signaling.test_hub import Client, Env, env, joined_pair
from tests.util import eventually

__all__ = ["env"]  # the fixture, imported to be used here


def welcome_of(client: Client) -> p.Welcome:
    first = client.received[0]
    assert isinstance(first, p.Welcome)
    return first


async def resume(env: Env, name: str, welcome: p.Welcome, room: str = "room1") -> p.Welcome:
    client = await env.connect(name)
    await client.send(p.Join(room=room, name=name, resume=welcome.resume_token))
    resumed = await client.next(p.Welcome)
    client.peer_id = resumed.peer_id
    return resumed


async def test_a_resumed_session_keeps_its_peer_id_and_the_others_see_nothing(env: Env) -> None:
    alice, bob = await joined_pair(env)
    first = welcome_of(alice)
    assert first.resume_token
    media = env.peer(alice)
    await alice.close()
    await asyncio.sleep(0.2)

    carol = await env.connect("carol")
    await carol.join()  # came while alice was away
    await bob.next(p.ParticipantJoined)

    alice2 = await env.connect("alice")
    await alice2.send(p.Join(room="room1", name="alice", resume=first.resume_token))
    welcome = await alice2.next(p.Welcome)
    assert welcome.resumed and welcome.peer_id == first.peer_id
    assert [x.peer_id for x in welcome.participants] == [bob.peer_id, carol.peer_id]
    assert welcome.resume_token and welcome.resume_token != first.resume_token
    assert not media.closed and env.backend.peers[first.peer_id] is media
    assert ("resumed", None) in media.calls
    await bob.sync()  # no participant_left, no participant_joined for alice
    assert env.hub.roster.rooms()["room1"][0].peer_id == first.peer_id

    # The session works on the new socket, and the media peer's signals reach it.
    await alice2.send(p.Offer(sdp="again"))
    assert (await alice2.next(p.ServerAnswer)).sdp == "answer-to:again"
    await alice2.next(p.Candidate)
    stats = env.hub.stats
    assert (stats.reconnects, stats.resumes, stats.failed_resumes) == (1, 1, 0)


async def test_a_token_works_once(env: Env) -> None:
    alice, _ = await joined_pair(env)
    first = welcome_of(alice)
    await alice.close()
    await resume(env, "alice", first)
    again = await env.connect("alice")
    await again.send(p.Join(room="room1", resume=first.resume_token))
    err = await again.error(ErrorCode.RESUME_FAILED)
    assert "join without `resume`" in err.message
    assert env.hub.stats.failed_resumes == 1
    fresh = await again.join()  # the socket is usable: a fresh session
    assert fresh.peer_id != first.peer_id and not fresh.resumed


async def test_a_token_is_bound_to_its_room(env: Env) -> None:
    alice, bob = await joined_pair(env)
    first = welcome_of(alice)
    await alice.close()
    elsewhere = await env.connect("alice")
    await elsewhere.send(p.Join(room="other", resume=first.resume_token))
    await elsewhere.error(ErrorCode.RESUME_FAILED)
    welcome = await resume(env, "alice", first)  # the right room still works
    assert welcome.peer_id == first.peer_id
    await bob.sync()


@pytest.mark.hub_config(resume_grace=0.3)
async def test_after_the_grace_period_the_participant_leaves_and_the_token_is_worthless(
    env: Env,
) -> None:
    alice, bob = await joined_pair(env)
    first = welcome_of(alice)
    media = env.peer(alice)
    await alice.close()
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (first.peer_id, "disconnected")
    assert media.closed
    late = await env.connect("alice")
    await late.send(p.Join(room="room1", resume=first.resume_token))
    await late.error(ErrorCode.RESUME_FAILED)
    assert env.hub.desk.parked() == 0


async def test_a_pending_server_offer_is_sent_again_after_resume(env: Env) -> None:
    alice, _ = await joined_pair(env)
    first = welcome_of(alice)
    media = env.peer(alice)
    await alice.close()
    media.server_offer("made-while-away")  # nobody to send it to: dropped
    alice2 = await env.connect("alice")
    await alice2.send(p.Join(room="room1", resume=first.resume_token))
    await alice2.next(p.Welcome)
    assert (await alice2.next(p.ServerOffer)).sdp == "server-offer-again"
    assert (await alice2.next(p.Candidate)).candidate is None
    await alice2.send(p.Answer(sdp="late answer"))
    await alice2.sync()
    assert not media.offer_pending


async def test_resuming_while_the_old_socket_lives_moves_the_session(env: Env) -> None:
    alice, bob = await joined_pair(env)
    first = welcome_of(alice)
    welcome = await resume(env, "alice", first)  # alice's first socket is still open
    assert welcome.resumed and welcome.peer_id == first.peer_id
    await asyncio.wait_for(alice._reader, 5)
    assert alice.ws.close_code == 4001
    await bob.sync()
    assert not env.peer(alice).closed
    assert env.hub.desk.parked() == 0


async def test_a_media_failure_while_away_ends_the_stay(env: Env) -> None:
    alice, bob = await joined_pair(env)
    first = welcome_of(alice)
    media = env.peer(alice)
    await alice.close()
    await eventually(lambda: "" if env.hub.desk.parked() == 1 else "alice not parked yet")
    media.signals.media_failed("ICE consent expired")
    left = await bob.next(p.ParticipantLeft)
    assert (left.peer_id, left.reason) == (first.peer_id, "failed")
    assert media.closed


async def test_closing_the_hub_ends_parked_sessions(env: Env) -> None:
    alice, _ = await joined_pair(env)
    media = env.peer(alice)
    await alice.close()
    await eventually(lambda: "" if env.hub.desk.parked() == 1 else "alice not parked yet")
    await env.hub.close()
    assert media.closed and env.hub.desk.parked() == 0


async def test_desk_tokens_are_fresh_and_single_use() -> None:
    desk: ResumeDesk[str] = ResumeDesk(10)
    first = desk.issue("m")
    second = desk.issue("m")
    assert first != second and desk.peek(first) is None and desk.peek(second) == "m"
    assert desk.claim(second) == "m" and desk.claim(second) is None
    assert not desk.park("m", lambda reason: asyncio.sleep(0))  # no token: not resumable
    no_grace: ResumeDesk[str] = ResumeDesk(0)
    no_grace.issue("m")
    assert not no_grace.park("m", lambda reason: asyncio.sleep(0))
