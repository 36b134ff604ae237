"""TLS_CERT/TLS_KEY: the server serves https:// and wss:// itself, with a certificate made by the
README's own openssl command (`TLS on a LAN`)."""

from __future__ import annotations

import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sfu.client import Client
from sfu.media import TestPatternTrack
from sfu.server import RunningServer, ServerConfig
from tests.conftest import LOOPBACK
from tests.util import recv

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_certificate_command() -> str:
    """The README's openssl command, for 127.0.0.1 instead of its example LAN address."""
    match = re.search(r"^openssl req -x509 .*?(?<!\\)\n", README.read_text(), re.M | re.S)
    assert match, "the README's `TLS on a LAN` has no openssl command"
    return match.group(0).replace("192.168.1.20", "127.0.0.1")


def make_certificate(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (`make test` installs it, as root)")
    subprocess.run(
        ["sh", "-c", readme_certificate_command()],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "cert.pem", directory / "key.pem"


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, ssl.SSLContext]]:
    cert, key = make_certificate(tmp_path)
    config = ServerConfig(port=0, ice_addresses=LOOPBACK, tls_cert=str(cert), tls_key=str(key))
    server = await RunningServer(config).start()
    try:
        yield server, ssl.create_default_context(cafile=str(cert))
    finally:
        await server.stop()


async def test_https_and_wss(tls_server: tuple[RunningServer, ssl.SSLContext]) -> None:
    server, trusted = tls_server
    assert server.url.startswith("wss://") and server.page_url.startswith("https://")
    async with aiohttp.ClientSession() as http:
        async with http.get(server.page_url, ssl=trusted) as page:
            assert page.status == 200 and page.content_type == "text/html"
        # Plain HTTP on the TLS port gets nothing; a client that does not trust it is refused.
        with pytest.raises(aiohttp.ClientError):
            async with http.get(server.page_url.replace("https:", "http:")) as response:
                await response.read()
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(server.page_url)

    alice = Client(server.url, "lan", name="alice", ice_addresses=LOOPBACK, ssl_context=trusted)
    bob = Client(server.url, "lan", name="bob", ice_addresses=LOOPBACK, ssl_context=trusted)
    try:
        await alice.connect()
        await bob.connect()
        await alice.publish(TestPatternTrack(320, 240, fps=15))
        remote = await bob.next_track(timeout=15)
        frame = await recv(remote.track, 15)
        assert (frame.width, frame.height) == (320, 240)
    finally:
        await alice.close()
        await bob.close()
