"""The API faces over the service layer: the native `/v1` API and etcd's v3 JSON
gateway (`/v3`), plus health, metrics and the test-mode debug routes."""

from __future__ import annotations

from aiohttp import web

from raftkv.server import debug, ui, v1
from raftkv.server.etcd import mount as mount_etcd
from raftkv.server.http import CORS_KEY, SELF_ORIGIN_KEY, StreamGate
from raftkv.server.timing import timing_middleware
from raftkv.service import Services

GATE_KEY: web.AppKey[StreamGate] = web.AppKey("stream_gate", StreamGate)


def build_app(services: Services, cors: frozenset[str] = frozenset()) -> web.Application:
    """One aiohttp app serving every HTTP face of one member."""
    app = web.Application(
        client_max_size=services.limits.max_body_bytes,
        middlewares=[timing_middleware(services.node.prom), v1.errors_middleware],
    )
    app[CORS_KEY] = cors
    app[SELF_ORIGIN_KEY] = services.node.cfg.client_url.rstrip("/")
    gate = app[GATE_KEY] = StreamGate(services.limits.max_streams)  # gRPC's streams too
    services.node.prom.attach(
        services.node,
        {"raftkv_open_streams": ("Open streams (watch, keepalive, snapshot).", lambda: gate.open)},
    )
    v1.add_routes(app, services, gate)
    debug.add_routes(app.router, services.node)  # 404 unless RAFTKV_TEST_MODE=1
    ui.add_routes(app.router)  # the web console at /ui (and / redirects there)
    mount_etcd(app, services, gate)  # etcd v3 JSON gateway: /v3, /v3beta, /version
    return app


__all__ = ["GATE_KEY", "build_app"]
