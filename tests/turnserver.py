"""A real coturn on 127.0.0.1 with TURN REST credentials (use-auth-secret), per test
(loadtest.coturn), and the HMAC check a TURN server makes.

`make test` installs coturn when it is missing; without it these tests are skipped, except
under CI, where that is a failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from loadtest.coturn import REALM, TURNSERVER, Coturn, running_coturn

__all__ = ["REALM", "SECRET", "Coturn", "coturn_for_tests", "verifies"]

SECRET = "aiosfu-test-secret"


def verifies(username: str | None, credential: str | None) -> bool:
    """Whether a TURN REST credential is the HMAC that coturn expects for this username."""
    assert username is not None and credential is not None
    digest = hmac.new(SECRET.encode(), username.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), credential)


def require_coturn() -> None:
    if not Path(TURNSERVER).exists():
        message = "coturn is missing: `make test` installs it (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@asynccontextmanager
async def coturn_for_tests() -> AsyncIterator[Coturn]:
    require_coturn()
    async with running_coturn(SECRET) as coturn:
        yield coturn
