"""Request latency by face, operation and status for /metrics (metrics.py).

The outermost middleware: it sees the final status whatever the inner error table
made of an exception. The operation is the route's template (`/v1/kv/{key}`), never
the raw path, so label sets stay bounded; streaming answers (watches, snapshots) are
left out, their duration being the client's choice.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from raftkv.metrics import NodeMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _face(path: str) -> str:
    if path.startswith("/v1/"):
        return "v1"
    if path.startswith("/v3"):
        return "gateway"
    return "other"


def timing_middleware(prom: NodeMetrics) -> Middleware:
    @web.middleware
    async def timing(req: web.Request, handler: Handler) -> web.StreamResponse:
        t0 = time.monotonic()
        status = 500
        streamed = False
        try:
            resp = await handler(req)
            status = resp.status
            streamed = not isinstance(resp, web.Response)
            return resp
        except web.HTTPException as e:
            status = e.status
            raise
        finally:
            if not streamed:
                resource = req.match_info.route.resource
                op = f"{req.method} {resource.canonical}" if resource is not None else "unmatched"
                prom.request(_face(req.path), op, str(status), time.monotonic() - t0)

    return timing
