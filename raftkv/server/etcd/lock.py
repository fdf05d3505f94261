"""/v3/lock/lock and /v3/lock/unlock: etcd's v3lock service over the recipes service.

v3lock wraps its session's errors, so etcd answers a missing lease with gRPC Unknown
(HTTP 500) rather than NotFound; routes.py applies that for the lock and election
routes (`wrapped`).
"""

from __future__ import annotations

from typing import Any

from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, rejected, to_int, unb64


async def lock(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    lease = to_int(body.get("lease"), "lease")
    res = await gw.s.recipes.lock(name, lease)
    return {"header": gw.header_of(res), "key": b64(res.response)}


async def unlock(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    key = unb64(body.get("key"), "key")
    if not key:
        raise rejected("etcdserver: key is not provided")
    res = await gw.s.recipes.unlock(key)
    return {"header": gw.header_of(res)}
