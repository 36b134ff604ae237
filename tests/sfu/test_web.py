"""The room page and its modules are served as they are; nothing else of web/ is."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import aiohttp

from sfu.server import RunningServer, ServerConfig

WEB = Path(__file__).resolve().parents[2] / "web"


async def test_page_and_modules_are_served(server: RunningServer) -> None:
    base = server.page_url
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            assert '<script type="module" src="/app.js">' in await page.text()
        for name, kind in [
            ("app.js", "text/javascript"),
            ("sfu-client.js", "text/javascript"),
            ("style.css", "text/css"),
        ]:
            async with http.get(base + name) as response:
                assert response.status == 200, name
                assert response.content_type == kind, name
                assert response.headers["Cache-Control"] == "no-cache"


async def test_nothing_else_of_web_is_served(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        for path in [
            "package.json",
            "tsconfig.json",
            "protocol.d.ts",
            "node_modules/typescript/package.json",
            "typetests/messages.js",
            "..%2Fpyproject.toml",
            "missing.js",
        ]:
            async with http.get(server.page_url + path) as response:
                assert response.status == 404, path
        async with http.get(server.page_url + "healthz") as response:
            assert await response.text() == "ok"  # the hub's routes are not shadowed


def test_page_url_for_wildcard_hosts() -> None:
    assert RunningServer(ServerConfig(host="0.0.0.0", port=8080)).page_url == (
        "http://127.0.0.1:8080/"
    )
    assert RunningServer(ServerConfig(host="::", port=8080)).page_url == "http://[::1]:8080/"


class _Inline(HTMLParser):
    """What a strict Content-Security-Policy would block in a page: inline scripts, styles, and
    event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self._in = "script"
        if tag == "style":
            self._in = "style"
        self.found += [f"<{tag} {name}=...>" for name in names if name.startswith("on")]
        if "style" in names:
            self.found.append(f"<{tag} style=...>")
        if any((value or "").strip().lower().startswith("javascript:") for _, value in attrs):
            self.found.append(f"<{tag} ...javascript:>")

    def handle_data(self, data: str) -> None:
        if self._in is not None and data.strip():
            self.found.append(f"inline <{self._in}>")

    def handle_endtag(self, tag: str) -> None:
        self._in = None


async def test_the_page_has_a_strict_content_security_policy(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.get(server.page_url) as page:
        policy = page.headers["Content-Security-Policy"]
        html = await page.text()
        assert page.headers["Referrer-Policy"] == "no-referrer"
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    host = f"127.0.0.1:{server.port}"
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["connect-src"] == f"'self' ws://{host} wss://{host}"
    assert directives["frame-ancestors"] == "'none'"
    inline = _Inline()
    inline.feed(html)
    assert inline.found == [], inline.found
    for module in sorted(WEB.glob("*.js")):
        source = module.read_text()
        for blocked in ("eval(", "new Function(", "insertAdjacentHTML", ".innerHTML ="):
            assert blocked not in source, f"{module.name} uses {blocked}"
