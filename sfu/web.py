"""The room page: `GET /` and the static ES modules and styles of web/, served as they are.

No build step: the browser loads web/app.js, which imports web/sfu-client.js. Only plain files at
the top of web/ with a served extension are reachable (not node_modules/, package.json, the
TypeScript declarations or the type tests); those are also what the wheel ships (sfu/page).

The page is served with a Content-Security-Policy that lets it run only its own modules and
styles, and connect only to its own host's WebSocket: an injected script (a name shown in a
tile, say) would not run, and could not send the call anywhere else. Its scripts are all files
(no inline script or style), which tests/sfu/test_web.py checks. No referrer: a `?token=` in the
page's URL must not leave with a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

# sfu/page: in a checkout a link to the repository's web/, in an installed wheel a copy of its
# top-level files (package data, pyproject.toml), so `pip install .` serves the page too.
DEFAULT_WEB_DIR: Final = Path(__file__).resolve().parent / "page"

CONTENT_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}
# A route pattern, so that it can never shadow /ws, /healthz or another route added later.
_FILE_PATTERN: Final = r"[A-Za-z0-9_-]+\.(?:js|css|svg|png)"
# Modules are revalidated on every load (ETag / Last-Modified): an updated server never runs a
# page whose modules come from two versions.
_HEADERS: Final = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def content_security_policy(host: str) -> str:
    """The page's policy, for a request to `host` (its Host header: where the page was loaded
    from, which is where its WebSocket goes)."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src 'self' ws://{host} wss://{host}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def add_routes(app: web.Application, web_dir: Path = DEFAULT_WEB_DIR) -> None:
    """Mount `GET /` (the room page) and `GET /<file>` for the page's files in web_dir."""
    root = web_dir.resolve()

    def respond(path: Path, **headers: str) -> web.StreamResponse:
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(
            path, headers={**_HEADERS, "Content-Type": CONTENT_TYPES[path.suffix], **headers}
        )

    async def index(request: web.Request) -> web.StreamResponse:
        return respond(
            root / "index.html",
            **{
                "Content-Security-Policy": content_security_policy(request.host),
                "Referrer-Policy": "no-referrer",
            },
        )

    async def static(request: web.Request) -> web.StreamResponse:
        return respond(root / request.match_info["name"])

    app.router.add_get("/", index)
    app.router.add_get(f"/{{name:{_FILE_PATTERN}}}", static)
