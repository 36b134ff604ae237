"""Room tokens: minted and verified with the clock passed in; each way to fail has its code."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from signaling.auth import LEEWAY_SECONDS, Admission, TokenError, admit, check_secret, mint, verify
from signaling.backend import ALL_GRANTS, Grants

SECRET = "s" * 64  # long enough for HS512 too (one case signs with it)
NOW = 1_800_000_000.0


def code_of(secret: str | None, token: str | None, room: str = "standup") -> str:
    with pytest.raises(TokenError) as refused:
        admit(secret, room, token, "Client Name", now=NOW)
    assert refused.value.message
    return refused.value.code


def test_a_good_token_admits_its_identity_name_and_grants() -> None:
    grants = Grants(publish=False, subscribe=True, admin=True)
    token = mint(SECRET, room="standup", identity="alice", name="Alice", grants=grants, now=NOW)
    assert admit(SECRET, "standup", token, "ignored", now=NOW + 60) == Admission(
        identity="alice", name="Alice", grants=grants
    )
    claims = verify(SECRET, token, now=NOW)
    assert (claims.room, claims.expires) == ("standup", NOW + 3600)


def test_without_a_name_in_the_token_the_clients_is_used() -> None:
    token = mint(SECRET, room="standup", identity="bob", now=NOW)
    assert admit(SECRET, "standup", token, "Bobby", now=NOW).name == "Bobby"


def test_a_token_for_any_room() -> None:
    token = mint(SECRET, room="*", identity="recorder", now=NOW)
    assert admit(SECRET, "elsewhere", token, None, now=NOW).identity == "recorder"


def test_open_rooms_need_no_token() -> None:
    assert admit(None, "standup", None, "Alice") == Admission(None, "Alice", ALL_GRANTS)


def _forge(claims: dict[str, object], alg: str = "none") -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "token_required"),
        ("", "token_required"),
        (mint(SECRET, room="standup", identity="a", ttl=60, now=NOW - 3600), "token_expired"),
        (
            mint(SECRET, room="standup", identity="a", now=NOW, not_before=NOW + 600),
            "token_not_yet_valid",
        ),
        (mint(SECRET, room="retro", identity="a", now=NOW), "token_wrong_room"),
        (mint("x" * 64, room="standup", identity="a", now=NOW), "token_invalid"),  # forged
        (
            _forge({"sub": "a", "room": "standup", "nbf": NOW, "exp": NOW + 60}),  # alg none
            "token_invalid",
        ),
        ("not.a.token", "token_invalid"),
        (
            jwt.encode({"room": "standup", "nbf": NOW, "exp": NOW + 60}, SECRET),  # no identity
            "token_invalid",
        ),
        (
            jwt.encode({"sub": "a", "nbf": NOW, "exp": NOW + 60}, SECRET),  # no room
            "token_invalid",
        ),
        (
            jwt.encode(
                {"sub": "a", "room": "standup", "nbf": NOW, "exp": NOW + 60, "grants": []}, SECRET
            ),
            "token_invalid",
        ),
        (
            jwt.encode(  # HS512 with the right secret: only HS256 is accepted
                {"sub": "a", "room": "standup", "nbf": NOW, "exp": NOW + 60},
                SECRET,
                algorithm="HS512",
            ),
            "token_invalid",
        ),
    ],
    ids=[
        "none",
        "empty",
        "expired",
        "not yet valid",
        "wrong room",
        "forged signature",
        "alg none",
        "garbage",
        "no identity",
        "no room",
        "bad grants",
        "other algorithm",
    ],
)
def test_tokens_that_admit_no_one(token: str | None, code: str) -> None:
    assert code_of(SECRET, token) == code


def test_a_tampered_payload_fails_its_signature() -> None:
    header, _, signature = mint(SECRET, room="retro", identity="a", now=NOW).split(".")
    claims = {"sub": "a", "room": "standup", "iat": NOW, "nbf": NOW, "exp": NOW + 3600}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert code_of(SECRET, f"{header}.{payload}.{signature}") == "token_invalid"


def test_clocks_may_differ_by_the_leeway() -> None:
    token = mint(SECRET, room="standup", identity="a", ttl=60, now=NOW)
    assert verify(SECRET, token, now=NOW + 60 + LEEWAY_SECONDS - 1).identity == "a"
    early = mint(SECRET, room="standup", identity="a", now=NOW, not_before=NOW + 5)
    assert verify(SECRET, early, now=NOW).identity == "a"


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        check_secret("short")
    check_secret(SECRET)
