"""The room page and its modules are served as they are; nothing else of web/ is."""

from __future__ import annotations

import aiohttp

from sfu.server import RunningServer, ServerConfig


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
