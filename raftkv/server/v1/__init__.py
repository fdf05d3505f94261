"""The native, curl-friendly `/v1` API face: parse -> service -> encode."""

from __future__ import annotations

from aiohttp import web

from raftkv.server.http import StreamGate
from raftkv.server.v1 import openapi
from raftkv.server.v1.base import V1, errors_middleware
from raftkv.server.v1.cluster import ClusterApi
from raftkv.server.v1.kv import KvApi
from raftkv.server.v1.lease import LeaseApi
from raftkv.server.v1.watch import WatchApi
from raftkv.service import Services

__all__ = ["add_routes", "errors_middleware"]


def add_routes(app: web.Application, services: Services, gate: StreamGate) -> None:
    v1 = V1(services, gate)
    r = app.router
    for api in (KvApi(v1), LeaseApi(v1), WatchApi(v1), ClusterApi(v1)):
        api.add_routes(r)
    openapi.add_routes(r)
