"""The client's address: X-Forwarded-For is believed only as far as trusted proxies wrote it."""

from __future__ import annotations

import pytest

from signaling.clientip import ClientAddress


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ((), "203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # no proxy trusted: the peer
        (("10.0.0.0/8",), "203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # not via a proxy
        (("10.0.0.1",), "10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        (("10.0.0.1",), "10.0.0.1", [], "10.0.0.1"),  # a proxy that said nothing
        # The client wrote a false first entry; the proxy appended what it saw.
        (("10.0.0.1",), "10.0.0.1", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),
        # Two trusted proxies in a row.
        (("10.0.0.0/8",), "10.0.0.1", ["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
        (("10.0.0.0/8",), "10.0.0.1", ["198.51.100.1", "10.0.0.2"], "198.51.100.1"),
        (("10.0.0.1",), "::ffff:10.0.0.1", ["198.51.100.1"], "198.51.100.1"),
        (("::1",), "::1", ["2001:db8::5"], "2001:db8::5"),
        (("10.0.0.1",), None, ["198.51.100.1"], "unknown"),
    ],
)
def test_client_address(
    trusted: tuple[str, ...], peer: str | None, forwarded: list[str], client: str
) -> None:
    assert ClientAddress(trusted).of(peer, forwarded) == client
