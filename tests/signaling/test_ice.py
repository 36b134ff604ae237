"""ICE settings: URL checks, the one-line refusals of settings that cannot work, and what each
mode hands to clients and to the server's own peer connections."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from signaling.backend import IceServer
from signaling.ice import IceConfig, IceConfigError, IceUrl, parse_ice_url

SECRET = "s3cret"
NOW = 1_700_000_000.0


def rest(**kwargs: object) -> IceConfig:
    return IceConfig(turn_urls=("turn:127.0.0.1:3478",), turn_secret=SECRET, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("stun:stun.example.org", IceUrl("stun", "stun.example.org", 3478, None)),
        ("stun:192.0.2.1:19302", IceUrl("stun", "192.0.2.1", 19302, None)),
        ("turn:turn.example.org", IceUrl("turn", "turn.example.org", 3478, "udp")),
        ("turn:turn.example.org:80?transport=tcp", IceUrl("turn", "turn.example.org", 80, "tcp")),
        ("turns:turn.example.org", IceUrl("turns", "turn.example.org", 5349, "tcp")),
        (
            "turns:turn.example.org:443?transport=tcp",
            IceUrl("turns", "turn.example.org", 443, "tcp"),
        ),
    ],
)
def test_urls(url: str, parsed: IceUrl) -> None:
    assert parse_ice_url(url, "TURN_URLS") == parsed


@pytest.mark.parametrize(
    "url",
    [
        "turn.example.org:3478",
        "http://turn.example.org",
        "turn:",
        "turn:host:0",
        "turn:host:99999",
        "turn:host?transport=sctp",
        "turns:host?transport=udp",
        "stun:host?transport=udp",
        "turn:[2001:db8::1]:3478",
        "turn:host name",
    ],
)
def test_bad_urls_name_the_setting(url: str) -> None:
    with pytest.raises(IceConfigError, match=r"^TURN_URLS: "):
        parse_ice_url(url, "TURN_URLS")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "turn-only"}, "ICE_MODE=turn-only needs TURN_URLS"),
        ({"mode": "stun-only"}, "ICE_MODE=stun-only needs STUN_URLS"),
        ({"mode": "relay"}, "ICE_MODE must be one of all, stun-only, turn-only"),
        ({"turn_urls": ("turn:h",)}, "TURN_URLS needs credentials: TURN_SECRET"),
        ({"stun_urls": ("turn:h",)}, "STUN_URLS: 'turn:h' is a TURN URL"),
        ({"turn_urls": ("stun:h",), "turn_secret": "x"}, "TURN_URLS: 'stun:h' is a STUN URL"),
        ({"turn_urls": ("turn:h",), "turn_username": "u"}, "TURN_USERNAME and TURN_PASSWORD"),
        (
            {"turn_urls": ("turn:h",), "turn_secret": "x", "turn_username": "u"},
            "TURN_SECRET and TURN_USERNAME/TURN_PASSWORD are exclusive",
        ),
        ({"turn_urls": ("turn:h",), "turn_secret": ""}, "TURN_SECRET is empty"),
        ({"turn_ttl": 0}, "TURN_TTL must be a positive duration"),
    ],
)
def test_settings_that_cannot_work_are_refused_in_one_line(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(IceConfigError) as raised:
        IceConfig(**settings)  # type: ignore[arg-type]
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_rest_credentials_are_minted_per_peer_and_verify() -> None:
    config = rest(turn_ttl=600)
    [server] = config.client_servers("peer1", NOW)
    assert server.urls == ["turn:127.0.0.1:3478"]
    assert server.username == f"{int(NOW) + 600}:peer1"
    expected = hmac.new(SECRET.encode(), server.username.encode(), hashlib.sha1).digest()
    assert server.credential == base64.b64encode(expected).decode()
    assert config.client_servers("peer2", NOW)[0].credential != server.credential


def test_the_secret_is_never_shown() -> None:
    config = rest()
    assert SECRET not in repr(config)
    assert SECRET not in config.describe()
    assert SECRET not in repr(config.client_infos("p", NOW))
    static = IceConfig(turn_urls=("turn:h",), turn_username="u", turn_password="hunter2")
    assert "hunter2" not in repr(static) and "hunter2" not in static.describe()


def test_modes_hand_out_what_they_say() -> None:
    both = {"stun_urls": ("stun:127.0.0.1",), "turn_urls": ("turn:127.0.0.1",)}
    everything = IceConfig(**both, turn_secret=SECRET)  # type: ignore[arg-type]
    assert [s.urls for s in everything.client_servers("p", NOW)] == [
        ["stun:127.0.0.1"],
        ["turn:127.0.0.1"],
    ]
    assert everything.server_servers("p", NOW) == []  # host candidates only
    assert everything.refreshes_credentials

    stun_only = IceConfig(mode="stun-only", **both, turn_secret=SECRET)  # type: ignore[arg-type]
    assert stun_only.client_servers("p", NOW) == [IceServer(urls=["stun:127.0.0.1"])]
    assert not stun_only.refreshes_credentials
    assert stun_only.warnings() == ["TURN_URLS are not handed out in ICE_MODE=stun-only"]

    turn_only = IceConfig(mode="turn-only", **both, turn_secret=SECRET)  # type: ignore[arg-type]
    assert [s.urls for s in turn_only.client_servers("p", NOW)] == [["turn:127.0.0.1"]]
    assert turn_only.warnings() == []


def test_the_server_relays_too_in_turn_only_mode_with_its_own_credentials() -> None:
    config = IceConfig(
        mode="turn-only",
        turn_urls=(
            "turns:turn.example.org:443",
            "turn:turn.example.org?transport=tcp",
            "turn:turn.example.org",
        ),
        turn_secret=SECRET,
    )
    [server] = config.server_servers("peer1", NOW)
    # aiortc uses the first TURN URL it can: plain UDP goes first for the server.
    assert server.urls[0] == "turn:turn.example.org"
    assert server.username == f"{int(NOW) + 3600}:sfu-peer1"


def test_static_credentials_are_accepted_with_a_warning() -> None:
    config = IceConfig(turn_urls=("turn:h",), turn_username="u", turn_password="p")
    assert config.client_servers("peer1", NOW) == [
        IceServer(urls=["turn:h"], username="u", credential="p")
    ]
    assert not config.refreshes_credentials
    [warning] = config.warnings()
    assert "static TURN credentials" in warning and "TURN_SECRET" in warning
