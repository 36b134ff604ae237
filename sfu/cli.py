"""`aiosfu serve`: run the hub and the media plane in one process; `aiosfu loadtest`: see
loadtest.run.

Every flag has an environment variable of the same meaning (flags win): HOST, PORT,
ICE_ADDRESSES (comma-separated), ICE_MODE, ALLOWED_ORIGINS, MAX_BITRATE, LOG_LEVEL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from signaling.protocol import ICE_MODES

from .config import DEFAULT_MAX_BITRATE
from .server import ServerConfig, serve_forever


def _csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="aiosfu", description="A WebRTC SFU in Python.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the signaling hub and the SFU")
    serve.add_argument("--host", default=env.get("HOST", "127.0.0.1"), help="listen address")
    serve.add_argument("--port", type=int, default=int(env.get("PORT", "8080")), help="HTTP port")
    serve.add_argument(
        "--ice-addresses",
        default=env.get("ICE_ADDRESSES"),
        help="comma-separated local IPs that ICE gathers host candidates on "
        "(default: every interface but loopback, as aioice does)",
    )
    serve.add_argument("--ice-mode", default=env.get("ICE_MODE", "all"), choices=ICE_MODES)
    serve.add_argument(
        "--allowed-origins",
        default=env.get("ALLOWED_ORIGINS"),
        help="comma-separated page origins allowed to open /ws besides the server's own ('*': any)",
    )
    serve.add_argument(
        "--max-bitrate",
        type=int,
        default=int(env.get("MAX_BITRATE", str(DEFAULT_MAX_BITRATE))),
        help="bits/s a video publisher is told (REMB) it may send at most",
    )
    serve.add_argument("--log-level", default=env.get("LOG_LEVEL", "INFO"))
    # Listed for --help only: main() hands `loadtest ...` to loadtest.run before parsing.
    commands.add_parser("loadtest", help="synthetic peers against a server (--help for more)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadtest"]:
        from loadtest.run import main as loadtest_main  # `serve` needs none of it

        return loadtest_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ice_addresses=_csv(args.ice_addresses),
        ice_mode=args.ice_mode,
        allowed_origins=_csv(args.allowed_origins) or [],
        max_bitrate=args.max_bitrate,
    )
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(serve_forever(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
