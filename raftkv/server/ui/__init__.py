"""The web console at /ui: one page served by every member, no build step, no CDN.

Every asset ships in the package (static/) and is read once; the page talks to the
member that served it through the native /v1 API only (same origin, so no CORS), and
to the other members through that member (`GET /v1/cluster/status`). Writes from the
page carry the member's own origin, which `http.refuse_origin` accepts only when it
is exactly the member's advertised client URL — a DNS-rebinding page under another
name is still refused. The answers forbid framing and foreign scripts.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
MEDIA = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), MEDIA[p.suffix])
        for p in STATIC.iterdir()
        if p.is_file() and p.suffix in MEDIA
    }


ASSETS = _load()


def _asset(name: str) -> web.Response:
    found = ASSETS.get(name)
    if found is None:
        raise web.HTTPNotFound(
            text='{"error": {"code": "not_found", "message": "no such console asset"}}',
            content_type="application/json",
        )
    body, media = found
    return web.Response(body=body, content_type=media, charset="utf-8", headers=HEADERS)


async def _to_console(req: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/ui/")


async def _index(req: web.Request) -> web.StreamResponse:
    return _asset("index.html")


async def _file(req: web.Request) -> web.StreamResponse:
    return _asset(req.match_info["name"])


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/", _to_console)
    r.add_get("/ui", _to_console)
    r.add_get("/ui/", _index)
    r.add_get("/ui/{name:[A-Za-z0-9_.-]+}", _file)
