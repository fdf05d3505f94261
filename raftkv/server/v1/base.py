"""The native face's shared handler plumbing: parse -> service -> encode.

Handlers get a `V1` object (services, limits), read their options through `query()`
(checked against the route's declaration in openapi.ROUTES) and their body through
`body()` (bounded in bytes and time). Every error, typed or face-level, leaves
through `errors_middleware` as the JSON error body of errors.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from raftkv.errors import RaftkvError
from raftkv.server.http import (
    CORS_KEY,
    BodyTimeout,
    BodyTooLarge,
    BodyUnreadable,
    StreamGate,
    cors_headers,
    read_body,
    refuse_origin,
)
from raftkv.server.v1.errors import ApiError, error_response, to_api_error
from raftkv.server.v1.openapi import ROUTES
from raftkv.server.v1.params import Query, json_object, route_template
from raftkv.service import Services

log = structlog.get_logger("raftkv.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    k: frozenset(op.query) for k, op in ROUTES.items()
}


def json_ok(obj: Any, status: int = 200) -> web.Response:
    """Native answers are spaced JSON (`"key": value`) as they always were: curl users
    read them, and scripts (the README's tour among them) match on that spacing."""
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json")


class V1:
    def __init__(self, services: Services, gate: StreamGate) -> None:
        self.s = services
        self.node = services.node
        self.limits = services.limits
        self.gate = gate
        self._allowed: dict[object, frozenset[str]] = {}

    @property
    def term(self) -> int:
        return self.node.term

    def query(self, req: web.Request) -> Query:
        route = req.match_info.route
        allowed = self._allowed.get(route)
        if allowed is None:  # once per route: the template is a regex substitution
            allowed = self._allowed[route] = _ALLOWED.get(route_template(req), frozenset())
        return Query(req, allowed)

    async def raw_body(self, req: web.Request, limit: int | None = None) -> bytes:
        return await read_body(
            req, limit or self.limits.max_request_bytes, self.limits.request_body_timeout
        )

    async def body(self, req: web.Request, required: bool = False) -> dict[str, Any]:
        return json_object(await self.raw_body(req), required)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: browser origins (refuse, or add CORS headers), then the
    error table for whatever the handler raised."""
    refused = refuse_origin(request)
    if refused is not None:
        return refused
    resp = await _handle(request, handler)
    if not resp.prepared and request.app[CORS_KEY]:
        resp.headers.update(cors_headers(request))
    return resp


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except RaftkvError as e:
        err = to_api_error(e)
        if err.status == 500:
            log.error("internal error", path=request.path, error=e.describe())
        return error_response(err)
    except BodyTooLarge as e:
        return error_response(
            ApiError(413, "request_too_large", f"request body over {e.limit} bytes")
        )
    except BodyUnreadable as e:
        return error_response(ApiError(400, "bad_request", str(e)))
    except BodyTimeout:
        return error_response(ApiError(408, "request_timeout", "request body not received in time"))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        headers = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        code = e.reason.lower().replace(" ", "_")
        resp = error_response(ApiError(e.status, code, e.text or e.reason))
        if headers:
            resp.headers.update(headers)
        return resp
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception as e:  # a bug, never client input: log it, answer in JSON
        log.exception("internal error", path=request.path)
        return error_response(ApiError(500, "internal", f"internal error: {type(e).__name__}"))
