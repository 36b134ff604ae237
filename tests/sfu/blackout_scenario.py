"""A blackout of all UDP between Python clients and the server, in a network namespace of its
own: run by tests/sfu/test_blackout.py as `unshare --net -- python -m tests.sfu.blackout_scenario
PARENT_NS SECONDS...` (one blackout after the other, in one call); raises on what a user would
see go wrong and prints its figures as JSON.

A server in this process (its dead-path detection on, as deployed), Python clients alice
(publishes a test pattern) and bob (receives it), their WebSockets untouched (TCP). After each
blackout the call must either carry alice's video to bob again or have told everyone: no
zombie left in the room (every participant the server keeps is a client's current session).
5 s is shorter than any timeout; 30 s is past aioice's consent expiry (6 checks ~5 s apart).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from sfu.client import Client
from tests.conftest import serving
from tests.netfault import enter_own_namespace, iptables
from tests.sfu.deadpath_scenario import Frames, call
from tests.util import eventually


async def blackout(server: Any, alice: Client, bob: Client, frames: Frames, seconds: float) -> Any:
    ids = (alice.peer_id, bob.peer_id)
    iptables("-I", "INPUT", "-p", "udp", "-j", "DROP")
    await asyncio.sleep(seconds)
    iptables("-D", "INPUT", "-p", "udp", "-j", "DROP")
    restored = time.monotonic()
    await eventually(lambda: "" if frames.first_after(restored) else "no frame at bob", 60, 0.01)
    first = frames.first_after(restored)
    # Healed in place, or everyone told: no zombie in the room, nor in anyone's view of it.
    clients = (alice, bob)

    def no_zombies() -> str:
        in_room = {p.id for p in server.backend.participants()}
        if in_room != {c.peer_id for c in clients}:
            return f"the server keeps {in_room}"
        for c in clients:
            if set(c.participants) - in_room:
                return f"{c.name} still sees {set(c.participants) - in_room}"
        return ""

    await eventually(no_zombies, 10)
    same = (alice.peer_id, bob.peer_id) == ids
    assert not any(c.disconnected.is_set() for c in clients)
    return {"restore_to_frame_at_bob": first, "same_sessions": same}


async def scenario(durations: list[float]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    async with serving() as server, call(server) as (alice, bob, frames):
        for seconds in durations:
            figures[f"{seconds:g} s"] = await blackout(server, alice, bob, frames, seconds)
        totals = server.backend.totals
        figures["ice_restarts"] = {f"{s}/{p}": n for (s, p), n in totals.ice_restarts.items()}
        figures["dead_paths"] = {
            "server": totals.dead_paths,
            "clients": alice.dead_paths + bob.dead_paths,
        }
        figures["rejoins"] = alice.rejoins + bob.rejoins
        figures["ice_failures"] = totals.ice_failures
    return figures


def main(parent_namespace: str, *durations: str) -> None:
    enter_own_namespace(parent_namespace)
    print(json.dumps(asyncio.run(scenario([float(d) for d in durations]))))


if __name__ == "__main__":
    main(*sys.argv[1:])
