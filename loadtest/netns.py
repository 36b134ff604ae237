"""A sealed network namespace for benchmarks: loopback only, made by the benchmark itself.

    if not netns.inside_own_namespace():
        netns.reexec_in_new_namespace("loadtest.sidebyside", argv)   # does not return
    netns.prepare()        # lo up, IPv6 off, the veth pair Janus needs, then check_sealed()

`reexec_in_new_namespace` runs `unshare --net -- python -m MODULE ARGS` with an environment
marker that holds the *parent's* namespace id: the child knows it is in a namespace of its own
only if its namespace differs from that one. A stale marker inherited from elsewhere therefore
cannot fool it, and the check still works when the parent itself sits in a namespace (pytest
under `make test` does).

Why a veth pair: Janus (libnice) refuses to gather candidates on loopback interfaces, and a
loopback-only namespace leaves it none ("490 Error gathering candidates"). With 127.0.0.1/32 on
one end of a veth pair whose both ends stay inside the namespace, Janus offers 127.0.0.1 and the
kernel still delivers every packet through `lo` (the veth counters stay at 0). IPv6 is disabled
so that nothing gathers a link-local address on the veth ends.

Nothing here can reach outside: the namespace has no interface that leaves it, and
`check_sealed()` proves there is no route out before anything is started.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

MARKER = "AIOSFU_BENCH_NETNS"
VETH = ("sfu0", "sfu1")  # 127.0.0.1/32 goes on the first
ALLOWED_LINKS = {"lo", *VETH}
# Documentation addresses (RFC 5737, RFC 3849): a route to them means a route out.
PROBES: tuple[tuple[str, socket.AddressFamily], ...] = (
    ("192.0.2.1", socket.AF_INET),
    ("2001:db8::1", socket.AF_INET6),
)


class NamespaceError(RuntimeError):
    """The namespace could not be made, or it is not sealed."""


def namespace_id() -> str:
    return os.readlink("/proc/self/ns/net")


def inside_own_namespace() -> bool:
    """True in a process that reexec_in_new_namespace() started (see the module docstring)."""
    parent = os.environ.get(MARKER)
    return parent is not None and parent != namespace_id()


def can_make_namespace() -> str | None:
    """None when we can; otherwise why not (for a refusal or a test skip)."""
    if os.geteuid() != 0:
        return "making a network namespace needs root (unshare --net)"
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (util-linux / iproute2)"
    return None


def reexec_in_new_namespace(module: str, argv: Sequence[str]) -> NoReturn:
    """Replace this process by `python -m module argv` inside a new network namespace."""
    if (reason := can_make_namespace()) is not None:
        raise SystemExit(f"refusing to run the benchmark outside a sealed namespace: {reason}")
    env = {**os.environ, MARKER: namespace_id()}
    unshare = shutil.which("unshare")
    assert unshare is not None
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(unshare, [unshare, "--net", "--", sys.executable, "-m", module, *argv], env)


def _run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NamespaceError(f"`{' '.join(args)}` failed: {result.stderr.strip()}")
    return result.stdout


def _write(path: str, value: str) -> None:
    if Path(path).exists():
        Path(path).write_text(value)


def prepare(*, veth: bool = True) -> None:
    """Set up the namespace we are in (it must be ours), then prove it is sealed."""
    if not inside_own_namespace():
        raise NamespaceError("not inside a namespace this benchmark made: refusing to touch it")
    # A marker can be inherited or forged; a new namespace has nothing but `lo`. Anything else
    # may be the host's network, which must never be changed.
    if (names := _link_names()) != {"lo"}:
        raise NamespaceError(f"the namespace is not new (interfaces {sorted(names)}): untouched")
    # Before the veth pair exists, so that its ends never get an IPv6 address.
    for conf in ("all", "default", "lo"):
        _write(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "1")
    _run("ip", "link", "set", "lo", "up")
    if veth:
        _run("ip", "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1])
        _run("ip", "addr", "add", "127.0.0.1/32", "dev", VETH[0])
        for name in VETH:
            _run("ip", "link", "set", name, "up")
    check_sealed()


def _link_names() -> set[str]:
    links: list[dict[str, Any]] = json.loads(_run("ip", "-json", "link", "show"))
    return {str(link["ifname"]) for link in links}


def check_sealed() -> None:
    """No interface but ours, no route but local ones, and the kernel agrees: nowhere to go."""
    if extra := _link_names() - ALLOWED_LINKS:
        raise NamespaceError(f"unexpected interfaces in the benchmark namespace: {sorted(extra)}")
    for version in ("-4", "-6"):
        routes: list[dict[str, Any]] = json.loads(
            _run("ip", "-json", version, "route", "show", "table", "all")
        )
        for route in routes:
            if route.get("type") not in ("local", "broadcast", "multicast", "anycast"):
                raise NamespaceError(f"a route that may lead out: {route}")
    for address, family in PROBES:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((address, 9))  # UDP connect: a route lookup, nothing is sent
        except OSError as exc:
            if exc.errno in (errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            raise
        raise NamespaceError(f"the kernel has a route to {address}: not sealed")


def describe() -> str:
    """One line for the report: interfaces and their addresses."""
    addrs: list[dict[str, Any]] = json.loads(_run("ip", "-json", "addr", "show"))
    parts = []
    for link in addrs:
        inet = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
        parts.append(f"{link['ifname']} {','.join(inet) or '-'}")
    return f"namespace {namespace_id()}: " + "; ".join(parts)
