"""A real coturn on 127.0.0.1 with TURN REST credentials (use-auth-secret), as testing.md says:
for the TURN tests (tests/turnserver.py) and relay-mode measurements (loadtest.relayjoin).

Started on a free port with its own relay port range, verbose log kept in a file: `allocations()`
lists the usernames it allocated for, `refusals()` counts refused allocations.
"""

from __future__ import annotations

import asyncio
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "aiosfu.test"
_ALLOCATED = re.compile(r"user <([^>]*)>: incoming packet ALLOCATE processed, success")
_REFUSED = re.compile(r"ALLOCATE processed, error (\d+)|check_stun_auth: Cannot find credentials")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class Coturn:
    def __init__(
        self, directory: Path, secret: str, port: int, relay_ports: tuple[int, int]
    ) -> None:
        self.directory = directory
        self.secret = secret
        self.port = port
        self.relay_ports = relay_ports
        self.log_path = directory / "turn.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def start(self) -> None:
        first, last = self.relay_ports
        args = [
            TURNSERVER,
            "-n",
            "-v",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            f"--min-port={first}",
            f"--max-port={last}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={REALM}",
            "--allow-loopback-peers",  # else allocations succeed and peers never connect
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--no-tcp-relay",
            "--no-software-attribute",
            "--no-rfc5780",
            "--no-stun-backward-compatibility",
            f"--userdb={self.directory / 'turndb'}",
            f"--pidfile={self.directory / 'turn.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log()[-2000:]}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                if tcp.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"turnserver not listening on {self.port} after {timeout}s")
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """A clean blackout of the TURN server (SIGSTOP), until resume()."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def allocations(self) -> list[str]:
        """Usernames of the allocations coturn made, in order."""
        return _ALLOCATED.findall(self.log())

    def refusals(self) -> int:
        return len(_REFUSED.findall(self.log()))


@asynccontextmanager
async def running_coturn(secret: str) -> AsyncIterator[Coturn]:
    with tempfile.TemporaryDirectory(prefix="aiosfu-coturn-") as directory:
        # Relay ports below Linux's ephemeral range (32768-60999), where ICE sockets bind.
        first = random.randrange(20000, 30000, 100)
        coturn = Coturn(Path(directory), secret, free_port(), (first, first + 99))
        coturn.start()
        try:
            await coturn.wait_ready()
            yield coturn
        finally:
            coturn.stop()
