"""HTTP plumbing every face shares: bounded bodies, parser errors, browsers, streams.

* Bodies are read with a byte limit and a deadline (`read_body`): a client that
  sends more than the limit gets 413 before the rest is read, one that trickles or
  never finishes gets 408, and neither holds memory or a task for long.
* Errors aiohttp's HTTP parser raises (bad request line, bad headers, bad chunking)
  are answered as the native API's JSON error, logged as one short line, never with a
  traceback (`Runner`).
* Browsers: by default no CORS header is sent, and a mutating request carrying an
  Origin that is not on the `--cors` allowlist is refused with 403, so a hostile web
  page cannot write to a member through a developer's browser (etcd's --cors defaults
  to "*"; raftkv is stricter). curl and the clients send no Origin and are unaffected.
* Streams (watches, keepalive streams) are counted per member and capped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestHandler, RequestPayloadError

from raftkv.errors import ResourceExhausted

log = structlog.get_logger("raftkv.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SURROGATES = re.compile("[\ud800-\udfff]")


def dumps(obj: Any) -> bytes:
    """Compact JSON (orjson); text with lone surrogates gets U+FFFD, as Go's encoder."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return orjson.dumps(_clean(obj))


def _clean(obj: Any) -> Any:
    if isinstance(obj, str):
        return _SURROGATES.sub("\ufffd", obj)
    if isinstance(obj, dict):
        return {_clean(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=dumps(obj), content_type="application/json", headers=headers
    )


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class BodyTimeout(Exception):
    pass


class BodyUnreadable(Exception):
    """A Content-Encoding raftkv does not take, or a body that does not decode."""


async def read_body(req: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body, at most `limit` bytes, within `timeout` seconds.

    Compressed request bodies are refused (etcd does not decompress them either): a
    small deflate bomb must not turn into gigabytes of work."""
    encoding = req.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise BodyUnreadable(f"Content-Encoding {encoding[:32]!r} is not supported")
    length = req.content_length
    if length is not None and length > limit:
        raise BodyTooLarge(limit)
    if req.content.is_eof():  # the whole body came with the head: no wait, no timer
        data = await req.content.read()
        if len(data) > limit:
            raise BodyTooLarge(limit)
        return data
    data = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await req.content.read(1 << 16):
                data += chunk
                if len(data) > limit:
                    raise BodyTooLarge(limit)
    except TimeoutError:
        raise BodyTimeout() from None
    except (RequestPayloadError, BadHttpMessage) as e:
        raise BodyUnreadable(f"malformed request body: {type(e).__name__}") from None
    return bytes(data)


# --- parser errors ---------------------------------------------------------------------


class _JsonErrorHandler(RequestHandler):
    """aiohttp's protocol handler, with parser errors answered in JSON and logged in
    one line (a plaintext client or a scanner must not fill the log with tracebacks)."""

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        log.info("bad http request", status=status, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        if status >= 500:
            status, code, text = 500, "internal", "internal error"
        else:
            code = "bad_request" if status == 400 else f"http_{status}"
            text = message or (str(getattr(exc, "message", "")) or "malformed HTTP request")
        body = dumps({"error": {"code": code, "message": _SURROGATES.sub("\ufffd", text)}})
        resp = web.Response(status=status, body=body, content_type="application/json")
        resp.force_close()
        return resp


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server


# --- browsers --------------------------------------------------------------------------

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CORS_KEY: web.AppKey[frozenset[str]] = web.AppKey("cors", frozenset)
# The member's own advertised client URL (scheme://host:port): the web console's
# origin. Only this exact string counts, never the request's Host header, which a
# DNS-rebinding page controls.
SELF_ORIGIN_KEY: web.AppKey[str] = web.AppKey("self_origin", str)


def cors_headers(req: web.Request) -> dict[str, str]:
    """The CORS headers this request's answer carries: every answer with `--cors '*'`
    (as etcd, whose default that is), answers to an allowed Origin, else none."""
    allowed = req.app.get(CORS_KEY, frozenset())
    origin = req.headers.get("Origin")
    if "*" in allowed:
        value = "*"
    elif origin is not None and origin in allowed:
        value = origin
    else:
        return {}
    return {
        "Access-Control-Allow-Origin": value,
        "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
        "Access-Control-Allow-Headers": "accept, content-type, authorization",
    }


def refuse_origin(req: web.Request) -> web.Response | None:
    """403 for a mutating request from a browser origin not on the allowlist."""
    origin = req.headers.get("Origin")
    if origin is None or req.method in SAFE_METHODS:
        return None
    allowed = req.app.get(CORS_KEY, frozenset())
    if "*" in allowed or origin in allowed or origin == req.app.get(SELF_ORIGIN_KEY):
        return None
    return json_response(
        {
            "error": {
                "code": "forbidden_origin",
                "message": f"requests from origin {origin!r} are not allowed "
                "(start the member with --cors to allow it)",
            }
        },
        403,
    )


# --- streams ---------------------------------------------------------------------------


class StreamGate:
    """Counts open streaming responses of a member; refuses beyond `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def enter(self) -> None:
        if self.open >= self.limit:
            raise ResourceExhausted("streams", self.limit)
        self.open += 1

    def leave(self) -> None:
        self.open -= 1
