"""A tiny aiohttp app with planted bugs, served in-process, to prove the fuzzer fails.

It speaks both faces the way raftkv does (an OpenAPI document at /v1/openapi.json,
JSON errors, an etcd-style /v3/kv/range) and hides bugs of the kinds raftkv had:

- POST /v1/things: a name with a lone surrogate -> 500 "internal error"
  (UnicodeEncodeError), a count over int64 -> 500 (struct.error);
- GET /v1/things/{id}?limit=N: N < 0 never answers (a hang);
- POST /v3/kv/range: "limit" as a string (legal jsonpb for int64) -> HTTP 500 with
  gRPC code 13 "internal";
- DELETE /v1/things/0 (only with `breakable`): the "cluster" stops taking writes,
  which only the periodic health check can see.

Its middleware answers a body aiohttp cannot decode with a 500, as raftkv does; the
fixed app (`bugs=False`) answers 400, which is what the fuzzer expects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "planted", "version": "1"},
    "paths": {
        "/v1/things": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}
                    },
                },
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/v1/things/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {"200": {"description": "ok"}},
            },
            "delete": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "ok"}},
            },
        },
    },
    "components": {
        "schemas": {
            "Thing": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "count": {"type": "integer", "minimum": 0},
                },
                "required": ["name"],
            }
        }
    },
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    pass


def _err(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """raftkv's own error mapping: 4xx for bad input, 500 "internal error" for bugs."""
    try:
        return await handler(request)
    except BadRequest as e:
        return _err(400, "bad_request", str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _err(e.status, e.reason.lower().replace(" ", "_"), e.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as e:
        return _err(500, "internal", f"internal error: {type(e).__name__}")


def build(*, bugs: bool = True, breakable: bool = False) -> web.Application:
    """The app; `bugs=False` is the same app with every planted bug fixed."""

    @web.middleware
    async def payload(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Fixed app only: a body aiohttp cannot decode (a bad Content-Encoding) is the
        # client's fault, a 400. (raftkv answers 500: one of the fuzzer's findings.)
        try:
            return await handler(request)
        except RequestPayloadError as e:
            return _err(400, "bad_request", f"cannot read the body: {e}")

    app = web.Application(middlewares=[_errors] if bugs else [_errors, payload])
    store: dict[str, bytes] = {}
    state = {"broken": False}

    async def body_json(req: web.Request) -> Any:
        try:
            return json.loads(await req.read() or b"{}")
        except (ValueError, RecursionError) as e:
            raise BadRequest(f"malformed body: {type(e).__name__}") from None

    async def post_thing(req: web.Request) -> web.StreamResponse:
        body = await body_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise BadRequest("name must be a string")
        # PLANTED: a lone surrogate raises UnicodeEncodeError (fixed: replace it)
        encoded = body["name"].encode("utf-8", "strict" if bugs else "surrogatepass")
        count = body.get("count", 0)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise BadRequest("count must be a non-negative integer")
        if not bugs and count >= 1 << 63:
            raise BadRequest("count must fit in int64")
        struct.pack(">q", count)  # PLANTED: over int64 raises struct.error
        return web.json_response({"name_bytes": len(encoded), "count": count})

    async def get_thing(req: web.Request) -> web.StreamResponse:
        raw = req.query.get("limit", "0")
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        if limit < 0 and bugs:
            await asyncio.sleep(3600)  # PLANTED: a hang
        return web.json_response({"id": req.match_info["id"], "limit": limit})

    async def delete_thing(req: web.Request) -> web.StreamResponse:
        if breakable and req.match_info["id"] == "0":
            state["broken"] = True  # PLANTED: the "cluster" stops taking writes
        return web.json_response({"deleted": req.match_info["id"]})

    async def put_kv(req: web.Request) -> web.StreamResponse:
        if state["broken"]:
            return web.json_response(
                {"error": {"code": "unavailable", "message": "no leader"}},
                status=503,
                headers={"Retry-After": "1"},
            )
        store[req.match_info["key"]] = await req.read()
        return web.json_response({"revision": len(store)})

    async def get_kv(req: web.Request) -> web.StreamResponse:
        value = store.get(req.match_info["key"])
        if value is None:
            return _err(404, "key_not_found", "key not found")
        return web.json_response({"value": value.decode("utf-8", "replace")})

    async def openapi(req: web.Request) -> web.StreamResponse:
        return web.json_response(DOC)

    def text(status: int, body: str) -> web.Response:
        return web.Response(status=status, text=body, content_type="text/plain")

    async def v3_not_found(req: web.Request) -> web.StreamResponse:
        return text(404, "Not Found\n")  # grpc-gateway's, as etcd answers

    async def v3_range(req: web.Request) -> web.StreamResponse:
        if req.method != "POST":
            return text(405, "Method Not Allowed\n")

        def etcd_error(status: int, code: int, message: str) -> web.Response:
            body = {"error": message, "message": message, "code": code}
            return web.json_response(body, status=status)

        try:
            body = json.loads(await req.read() or b"{}")
        except (ValueError, RecursionError):
            return etcd_error(400, 3, "unexpected EOF")
        except web.HTTPRequestEntityTooLarge:
            return etcd_error(400, 3, "etcdserver: request is too large")
        if not isinstance(body, dict):
            return etcd_error(400, 3, "json: cannot unmarshal into Go value")
        try:
            key = base64.b64decode(body.get("key") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            return etcd_error(400, 3, "illegal base64 data at input byte 0")
        if isinstance(body.get("limit"), str) and bugs:
            return etcd_error(500, 13, "internal")  # PLANTED: int64 as a string
        if not key:
            return etcd_error(400, 3, "etcdserver: key is not provided")
        return web.json_response({"header": {"revision": "1"}, "count": "0"})

    r = app.router
    r.add_get("/v1/openapi.json", openapi)
    r.add_post("/v1/things", post_thing)
    r.add_get("/v1/things/{id}", get_thing)
    r.add_delete("/v1/things/{id}", delete_thing)
    r.add_put("/v1/kv/{key:.*}", put_kv)
    r.add_get("/v1/kv/{key:.*}", get_kv)
    for prefix in ("/v3", "/v3beta"):
        r.add_route("*", prefix + "/kv/range", v3_range)
        r.add_route("*", prefix + "/{tail:.*}", v3_not_found)
    return app


class Served:
    """Run an aiohttp app on 127.0.0.1:<ephemeral> in a thread with its own loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, handler_cancellation=True, shutdown_timeout=0.2)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()

        async def start() -> int:
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

        self.port = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def health(self) -> str | None:
        """The planted "cluster" is healthy while a write reads back."""
        from tests.fuzz.client import Request, send

        r = send(Request(b"PUT", b"/v1/kv/health", (), b"ok"), self.port, timeout=2)
        if r.status != 200:
            return f"PUT /v1/kv/health answered {r.status}: {r.body[:100]!r}"
        r = send(Request(b"GET", b"/v1/kv/health"), self.port, timeout=2)
        if r.status != 200:
            return f"GET /v1/kv/health answered {r.status}"
        return None
