"""`aiosfu serve`: run the hub and the media plane in one process; `aiosfu loadtest`: see
loadtest.run; `aiosfu record`: see sfu.record.cli.

Every flag has an environment variable of the same meaning (flags win): HOST, PORT,
ICE_ADDRESSES (comma-separated), ICE_PORT_RANGE, ICE_ANNOUNCED_ADDRESS, ICE_MODE, STUN_URLS,
TURN_URLS, TURN_SECRET, TURN_TTL, TURN_USERNAME, TURN_PASSWORD, ALLOWED_ORIGINS, MAX_BITRATE,
RESUME_GRACE, LOG_LEVEL, the limits of signaling.limits (LIMIT_SETTINGS below), ALLOWED_HOSTS,
TRUSTED_PROXIES, TLS_CERT, TLS_KEY, DRAIN_GRACE, DRAIN_RETRY_AFTER (README, "Configuration").
A setting that cannot work stops the start with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import ssl
import sys
from collections.abc import Sequence

from signaling.auth import check_secret
from signaling.ice import DEFAULT_TURN_TTL, IceConfig
from signaling.limits import Limits
from signaling.protocol import ICE_MODES

from . import tokens
from .config import DEFAULT_MAX_BITRATE, parse_addresses, parse_announced, parse_port_range
from .server import ServerConfig, serve_forever, tls_context

logger = logging.getLogger("sfu.cli")


def _csv(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value: str) -> float:
    """Seconds, as `90`, `90s`, `30m`, `1h` or `1d`."""
    text = value.strip().lower()
    scale = _UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a duration (seconds, or 30s, 10m, 1h, 1d)"
        ) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: a duration must be positive")
    return seconds


def seconds(value: str) -> float:
    """A duration() that may also be 0."""
    return 0.0 if value.strip().lower() in ("0", "0s") else duration(value)


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
    serve.add_argument(
        "--ice-port-range",
        default=env.get("ICE_PORT_RANGE"),
        help="UDP ports ICE binds its host candidates on, FIRST-LAST (one per participant); "
        "default: ephemeral ports",
    )
    serve.add_argument(
        "--ice-announced-address",
        default=env.get("ICE_ANNOUNCED_ADDRESS"),
        help="behind 1:1 NAT: the public IP host candidates announce instead of the local one "
        "(or LOCAL=PUBLIC pairs, comma-separated)",
    )
    serve.add_argument(
        "--ice-mode",
        default=env.get("ICE_MODE", "all"),
        choices=ICE_MODES,
        help="all; stun-only (no TURN for clients); turn-only (every peer relays through TURN)",
    )
    serve.add_argument(
        "--stun-urls",
        default=env.get("STUN_URLS"),
        help="comma-separated STUN URLs handed to clients (stun:HOST[:PORT])",
    )
    serve.add_argument(
        "--turn-urls",
        default=env.get("TURN_URLS"),
        help="comma-separated TURN URLs handed to clients "
        "(turn:HOST[:PORT][?transport=udp|tcp], turns:HOST[:PORT])",
    )
    serve.add_argument(
        "--turn-secret",
        default=env.get("TURN_SECRET"),
        help="TURN REST shared secret (coturn's static-auth-secret); prefer the environment "
        "variable, which other users cannot read in the process list",
    )
    serve.add_argument(
        "--turn-ttl",
        type=duration,
        default=env.get("TURN_TTL", f"{DEFAULT_TURN_TTL:g}"),
        help="how long minted TURN credentials are valid (default 1h); fresh ones are sent "
        "at 3/4 of it",
    )
    serve.add_argument(
        "--turn-username",
        default=env.get("TURN_USERNAME"),
        help="static TURN username (discouraged: use TURN_SECRET)",
    )
    serve.add_argument("--turn-password", default=env.get("TURN_PASSWORD"))
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
    serve.add_argument(
        "--tls-cert",
        default=env.get("TLS_CERT"),
        help="PEM certificate (chain): serve https:// and wss:// directly (README, TLS)",
    )
    serve.add_argument("--tls-key", default=env.get("TLS_KEY"), help="its PEM private key")
    serve.add_argument(
        "--resume-grace",
        type=float,
        default=float(env.get("RESUME_GRACE", "30")),
        help="seconds a participant whose socket dropped is kept for its client to resume it",
    )
    serve.add_argument(
        "--drain-grace",
        type=seconds,
        default=env.get("DRAIN_GRACE", "5"),  # a string: argparse checks it with `type`
        help="on SIGTERM: seconds clients, told the server is going away, have before their "
        "sockets are closed",
    )
    serve.add_argument(
        "--drain-retry-after",
        type=seconds,
        default=env.get("DRAIN_RETRY_AFTER", "2"),
        help="on SIGTERM: the seconds clients are told to wait before connecting again",
    )
    serve.add_argument("--log-level", default=env.get("LOG_LEVEL", "INFO"))
    _add_limit_args(serve)
    serve.add_argument(
        "--auth-secret",
        default=env.get("AUTH_SECRET"),
        help="room tokens' shared secret (signed JWTs; see `aiosfu token`); without it rooms are "
        "open. Prefer the environment variable",
    )
    tokens.add_parser(commands, duration)
    # Listed for --help only: main() hands `loadtest ...` to loadtest.run before parsing.
    commands.add_parser("loadtest", help="synthetic peers against a server (--help for more)")
    commands.add_parser("record", help="record a room to files (--help for more)")
    return parser.parse_args(argv)


# Limits field -> environment variable (the flag is its lower-case, dashed form).
LIMIT_SETTINGS = {
    "message_rate": "MESSAGE_RATE",
    "message_burst": "MESSAGE_BURST",
    "byte_rate": "BYTE_RATE",
    "byte_burst": "BYTE_BURST",
    "flood_seconds": "FLOOD_SECONDS",
    "join_timeout": "JOIN_TIMEOUT",
    "connections_per_ip": "MAX_CONNECTIONS_PER_IP",
    "participants": "MAX_PARTICIPANTS",
    "tracks": "MAX_TRACKS",
    "candidates": "MAX_CANDIDATES",
    "sdp_chars": "MAX_SDP_CHARS",
    "mlines": "MAX_MLINES",
    "data_message_bytes": "DATA_MAX_BYTES",
    "data_rate": "DATA_RATE",
    "data_burst": "DATA_BURST",
    "data_byte_rate": "DATA_BYTE_RATE",
    "data_byte_burst": "DATA_BYTE_BURST",
}


def _add_limit_args(serve: argparse.ArgumentParser) -> None:
    env, defaults = os.environ, Limits()
    limits = serve.add_argument_group("limits (0 turns one off; README, Limits)")
    for name, variable in LIMIT_SETTINGS.items():
        default = getattr(defaults, name)
        limits.add_argument(
            "--" + variable.lower().replace("_", "-"),
            dest=f"limit_{name}",
            metavar="N",
            type=type(default),
            default=env.get(variable, default),  # argparse converts a string default as a flag
            help=f"default {default}",
        )
    serve.add_argument(
        "--allowed-hosts",
        default=env.get("ALLOWED_HOSTS"),
        help="comma-separated host names (or host:port) /ws answers to, against DNS rebinding "
        "(default: the loopback names when listening on loopback, else any)",
    )
    serve.add_argument(
        "--trusted-proxies",
        default=env.get("TRUSTED_PROXIES"),
        help="comma-separated addresses or networks of reverse proxies whose X-Forwarded-For "
        "names the client",
    )


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits(**{name: getattr(args, f"limit_{name}") for name in LIMIT_SETTINGS})
    except ValueError as exc:
        sys.stderr.write(f"aiosfu serve: {exc}\n")
        raise SystemExit(2) from None


def _check_tls(cert: str | None, key: str | None) -> None:
    if not cert and not key:
        return
    if not (cert and key):
        raise ValueError("TLS_CERT and TLS_KEY go together: set both")
    try:
        tls_context(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"TLS_CERT/TLS_KEY cannot be loaded: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["loadtest"]:
        from loadtest.run import main as loadtest_main  # `serve` needs none of it

        return loadtest_main(argv[1:])
    if argv[:1] == ["record"]:
        from .record.cli import main as record_main

        return record_main(argv[1:])
    args = parse_args(argv)
    if args.command == "token":
        return tokens.run(args)
    try:
        ice = IceConfig(
            mode=args.ice_mode,
            stun_urls=tuple(_csv(args.stun_urls) or ()),
            turn_urls=tuple(_csv(args.turn_urls) or ()),
            turn_secret=args.turn_secret or None,
            turn_ttl=args.turn_ttl,
            turn_username=args.turn_username or None,
            turn_password=args.turn_password or None,
        )
        ice_addresses = parse_addresses(args.ice_addresses) if args.ice_addresses else None
        ports = parse_port_range(args.ice_port_range) if args.ice_port_range else None
        _check_tls(args.tls_cert, args.tls_key)
        announced = (
            parse_announced(args.ice_announced_address or "") if args.ice_announced_address else {}
        )
    except ValueError as exc:  # IceConfigError and the others: one line naming the setting
        sys.stderr.write(f"aiosfu serve: {exc}\n")
        return 2
    if args.auth_secret:
        try:
            check_secret(args.auth_secret)
        except ValueError as exc:
            sys.stderr.write(f"aiosfu serve: {exc}\n")
            return 2
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logger.info("%s", ice.describe())
    for warning in ice.warnings():
        logger.warning("%s", warning)
    if not args.auth_secret:
        logger.warning(
            "AUTH_SECRET is not set: rooms are open, anyone who reaches this server may join any "
            "room and publish (and the admin API is off)"
        )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        ice_addresses=ice_addresses,
        ice_port_range=ports,
        ice_announced=announced,
        ice=ice,
        allowed_origins=_csv(args.allowed_origins) or [],
        max_bitrate=args.max_bitrate,
        limits=_limits(args),
        allowed_hosts=_csv(args.allowed_hosts) or [],
        trusted_proxies=_csv(args.trusted_proxies) or [],
        auth_secret=args.auth_secret or None,
        tls_cert=args.tls_cert or None,
        tls_key=args.tls_key or None,
        resume_grace=args.resume_grace,
        drain_grace=args.drain_grace,
        drain_retry_after=args.drain_retry_after,
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
