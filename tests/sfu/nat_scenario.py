"""A server behind 1:1 NAT, in a network namespace of its own: run by tests/sfu/test_nat.py as
`unshare --net -- python -m tests.sfu.nat_scenario`, it prints what it saw as JSON.

The namespace gets a veth pair, both ends inside: the server (`aiosfu serve`, a process of its
own) binds ICE on the "private" 10.77.0.1 with ICE_ANNOUNCED_ADDRESS=198.51.100.7 (a
documentation address that exists nowhere) and ICE_PORT_RANGE; iptables then forwards the
public address to the private one, as a cloud's 1:1 NAT does (DNAT on the way in, SNAT on the
way out). Two Python clients on 10.77.0.2 make a call through it. The call can only work
through the announced address: the private one is not in any candidate the server sends.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from loadtest.netns import namespace_id
from loadtest.serverproc import ServerProcess
from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.rtc.candidates import selected_pair_addresses, selected_pair_types
from tests.util import recv

PRIVATE = "10.77.0.1"
CLIENT = "10.77.0.2"
PUBLIC = "198.51.100.7"
PORTS = (40400, 40409)
VETH = ("aiosfu-nat0", "aiosfu-nat1")


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


def links() -> set[str]:
    shown = json.loads(
        subprocess.run(
            ["ip", "-json", "link", "show"], capture_output=True, text=True, check=True
        ).stdout
    )
    return {str(link["ifname"]) for link in shown}


def set_up(parent_namespace: str) -> None:
    # Only ever in a namespace made for this run: never the one the tests run in.
    if namespace_id() == parent_namespace or links() != {"lo"}:
        raise SystemExit("refusing: not a fresh network namespace")
    run("ip", "link", "set", "lo", "up")
    run("ip", "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1])
    run("ip", "addr", "add", f"{PRIVATE}/24", "dev", VETH[0])
    run("ip", "addr", "add", f"{CLIENT}/24", "dev", VETH[1])
    for name in VETH:
        run("ip", "link", "set", name, "up")
    # The public address lives on the NAT, not here: a route to the "NAT", then the mapping.
    run("ip", "route", "add", f"{PUBLIC}/32", "dev", VETH[1])
    run(
        "iptables",
        "-t",
        "nat",
        "-A",
        "OUTPUT",
        "-d",
        PUBLIC,
        "-p",
        "udp",
        "-j",
        "DNAT",
        "--to-destination",
        PRIVATE,
    )
    run(
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        PRIVATE,
        "-p",
        "udp",
        "-j",
        "SNAT",
        "--to-source",
        PUBLIC,
    )


def candidates(sdp: str) -> list[str]:
    return [line.split(" ", 4)[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


def remote_address(client: Client) -> tuple[str, int]:
    assert client.pc is not None
    addresses = selected_pair_addresses(client.pc)
    assert addresses is not None, "no pair nominated yet"
    return addresses.remote


async def scenario() -> dict[str, Any]:
    env = {"ICE_ANNOUNCED_ADDRESS": PUBLIC, "ICE_PORT_RANGE": f"{PORTS[0]}-{PORTS[1]}"}
    async with ServerProcess(ice_addresses=[PRIVATE], env=env) as server:
        alice = Client(server.url, "nat", name="alice", ice_addresses=[CLIENT])
        bob = Client(server.url, "nat", name="bob", ice_addresses=[CLIENT])
        try:
            await alice.connect()
            await bob.connect()
            await alice.publish(TestPatternTrack(320, 240, fps=15))
            remote = await bob.next_track(timeout=20)
            frame = await recv(remote.track, 20)
            assert alice.pc is not None and bob.pc is not None
            return {
                "frame": [frame.width, frame.height],
                "server_candidates": sorted(
                    set(candidates(alice.pc.remoteDescription.sdp))
                    | set(candidates(bob.pc.remoteDescription.sdp))
                ),
                "remote_addresses": [list(remote_address(c)) for c in (alice, bob)],
                "pair_types": [list(selected_pair_types(pc) or ()) for pc in (alice.pc, bob.pc)],
            }
        finally:
            await alice.close()
            await bob.close()


def main() -> None:
    set_up(parent_namespace=sys.argv[1])
    print(json.dumps(asyncio.run(scenario())))


if __name__ == "__main__":
    main()
