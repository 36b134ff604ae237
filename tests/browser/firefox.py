"""Debian's firefox-esr, headless, driven over its built-in WebDriver BiDi on aiohttp.

No geckodriver, no Playwright build of Firefox, no download: Firefox is started with
`--remote-debugging-port 0`, prints the BiDi WebSocket it listens on, and a few BiDi commands
(`session.new`, `browsingContext.create`/`navigate`, `script.callFunction`) and one event
(`log.entryAdded`, for console errors) are all the tests need.

The profile's prefs are those of ../shared/testing.md, every one of them needed inside a
loopback-only namespace: fake camera and microphone without a prompt; ICE on loopback, with host
addresses in the clear and on every interface, which Firefox does only with a stored camera and
microphone permission (without it it gathers on its default route's address, and a namespace
with only `lo` has none); no outside look-up of any kind; autoplay allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser.roompage import RoomTab

FIREFOX = Path("/usr/bin/firefox-esr")

PREFS: dict[str, bool | int | str] = {
    # Fake media, no permission prompt.
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # ICE on loopback, on every address, in the clear.
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    # No outside look-ups: every name resolves to localhost, no proxy, and nothing runs in the
    # background that would try (updates, telemetry, safe browsing, captive portal, connectivity).
    "network.dns.native-is-localhost": True,
    "network.proxy.type": 0,
    "app.update.auto": False,
    "app.update.enabled": False,
    "app.update.disabledForTesting": True,
    "extensions.update.enabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.server": "",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    # Autoplay, sound included: remote <audio> plays without a click.
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
}

_LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


def firefox_version() -> str:
    done = subprocess.run([str(FIREFOX), "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


class FirefoxProcess:
    """One headless Firefox with a fresh profile; its BiDi URL once it listens."""

    def __init__(self, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        self.log = profile / "firefox.log"
        with self.log.open("w") as log:  # a file, not a pipe: nobody has to keep reading it
            self.process = subprocess.Popen(
                [
                    str(FIREFOX),
                    "--headless",
                    "--no-remote",
                    "--profile",
                    str(profile),
                    "--remote-debugging-port",
                    "0",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MOZ_HEADLESS": "1"},
            )
        self.url = self._wait_listening(timeout=60)

    def _wait_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := _LISTENING.search(self.log.read_text(errors="replace")):
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"Firefox did not start its BiDi server: {self.log.read_text()[-2000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class BidiError(Exception):
    pass


class BidiSession:
    """One WebDriver BiDi session: commands by id, events to subscribers."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http = http
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: dict[str, list[Callable[[dict[str, Any]], None]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, url: str) -> BidiSession:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(f"{url}/session", max_msg_size=0)
        except BaseException:
            await http.close()
            raise
        session = cls(http, ws)
        await session.command("session.new", capabilities={})
        return session

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message: dict[str, Any] = json.loads(frame.data)
                if "id" in message and (future := self._pending.pop(message["id"], None)):
                    if not future.done():
                        future.set_result(message)
                elif message.get("type") == "event":
                    for listener in self._listeners.get(message["method"], []):
                        listener(message["params"])
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the BiDi socket closed"))

    async def command(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send_json({"id": self._next_id, "method": method, "params": params})
        message = await asyncio.wait_for(future, timeout)
        if message.get("type") == "error":
            raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
        result: dict[str, Any] = message["result"]
        return result

    async def subscribe(self, event: str, listener: Callable[[dict[str, Any]], None]) -> None:
        if event not in self._listeners:
            await self.command("session.subscribe", events=[event])
        self._listeners.setdefault(event, []).append(listener)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.command("session.end", timeout=10)
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self._http.close()


class FirefoxPage(RoomTab):
    """A Firefox tab (a BiDi browsing context)."""

    def __init__(self, session: BidiSession, context: str, name: str) -> None:
        super().__init__(name)
        self.session = session
        self.context = context

    @classmethod
    async def create(cls, session: BidiSession, name: str) -> FirefoxPage:
        created = await session.command("browsingContext.create", type="tab")
        page = cls(session, created["context"], name)
        await session.subscribe("log.entryAdded", page._on_log)
        return page

    def _on_log(self, entry: dict[str, Any]) -> None:
        # Console errors and uncaught exceptions ("javascript" entries) of this tab only.
        if entry.get("source", {}).get("context") == self.context and entry["level"] == "error":
            self.console_errors.append(f"{entry['type']}: {entry.get('text')}")

    async def goto(self, url: str) -> None:
        await self.session.command(
            "browsingContext.navigate", context=self.context, url=url, wait="complete"
        )

    async def evaluate(self, function: str) -> Any:
        # The value comes back as JSON text: BiDi's own serialization of objects is a tree of
        # typed nodes that nothing here needs.
        result = await self.session.command(
            "script.callFunction",
            functionDeclaration=f"async () => JSON.stringify(await ({function})())",
            target={"context": self.context},
            awaitPromise=True,
            resultOwnership="none",
        )
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise BidiError(f"{details.get('text')} in {function[:80]!r}")
        value = result["result"]
        return json.loads(value["value"]) if value["type"] == "string" else None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.session.command("browsingContext.close", context=self.context)
