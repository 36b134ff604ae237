"""`aiosfu token`: mint a room token with the server's AUTH_SECRET (signaling.auth).

    AUTH_SECRET=... aiosfu token --room standup --identity alice --name Alice --ttl 8h
    AUTH_SECRET=... aiosfu token --room '*' --identity ops --admin --no-publish --no-subscribe

prints the token, for `join.token`, the room page's `?token=` (an invite link) or the admin API's
`Authorization: Bearer`. Applications mint their own with any JWT library (the claims are in
signaling.auth).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from signaling.auth import ANY_ROOM, check_secret, mint
from signaling.backend import Grants


def add_parser(commands: Any, duration: Callable[[str], float]) -> None:
    token = commands.add_parser(
        "token",
        help="mint a room token (with AUTH_SECRET) and print it",
        description="Mint a room token signed with AUTH_SECRET and print it.",
    )
    token.add_argument("--room", required=True, help=f"the room, or {ANY_ROOM!r} for any room")
    token.add_argument("--identity", required=True, help="who: one session per identity per room")
    token.add_argument("--name", help="display name the others see")
    token.add_argument("--ttl", type=duration, default="1h", help="valid for (default 1h)")
    token.add_argument("--no-publish", action="store_true", help="may not publish")
    token.add_argument(
        "--no-data", action="store_true", help="may not send on data channels (receives still)"
    )
    token.add_argument("--no-subscribe", action="store_true", help="receives nothing")
    token.add_argument("--admin", action="store_true", help="may use the admin HTTP API")
    token.add_argument(
        "--auth-secret",
        default=os.environ.get("AUTH_SECRET"),
        help="the server's AUTH_SECRET (prefer the environment variable)",
    )


def run(args: argparse.Namespace) -> int:
    secret = args.auth_secret
    if not secret:
        sys.stderr.write("aiosfu token: set AUTH_SECRET to the server's secret\n")
        return 2
    try:
        check_secret(secret)
    except ValueError as exc:
        sys.stderr.write(f"aiosfu token: {exc}\n")
        return 2
    grants = Grants(
        publish=not args.no_publish,
        subscribe=not args.no_subscribe,
        data=not args.no_data,
        admin=args.admin,
    )
    token = mint(
        secret, room=args.room, identity=args.identity, name=args.name, ttl=args.ttl, grants=grants
    )
    sys.stdout.write(token + "\n")
    return 0
