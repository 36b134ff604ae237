"""aioice's consent freshness task (RFC 7675), kept from outliving its connection.

`Connection.connect()` starts the consent task once its check list completes. When the
connection is closed in the very tick where the list completes (a peer connection closed just
as ICE succeeds: a server shutting down, a client giving up), `connect()` resumes after
`close()` has run and starts the task anyway, on a connection with no pair left: it then
sleeps and wakes every ~5 s for ever (a leaked task per such race, seen in the tests). We make
the task end at once on a closed connection. Process-wide, idempotent: `install()` runs for
every peer connection aiosfu configures (sfu.peerconfig).
"""

from __future__ import annotations

from typing import Any

from aioice.ice import Connection

_original = Connection.query_consent


async def _query_consent(self: Any) -> None:
    if self._closing:
        return
    await _original(self)


def install() -> None:
    Connection.query_consent = _query_consent  # type: ignore[method-assign]


def installed() -> bool:
    return Connection.query_consent is _query_consent
