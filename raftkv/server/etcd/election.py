"""/v3/election/*: etcd's v3election service over the recipes service.

Errors of the election itself are plain errors in etcd, hence gRPC Unknown (HTTP 500);
routes.py maps them (and a missing lease) that way for these routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from raftkv.server.etcd.encode import kv as kv_json
from raftkv.server.etcd.errors import EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, obj, to_int, unb64
from raftkv.service.recipes import LeaderKey

MSG_MISSING_LEADER = '"leader" field must be provided'


def _leader_key(lk: LeaderKey) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if lk.name:
        out["name"] = b64(lk.name)
    if lk.key:
        out["key"] = b64(lk.key)
    if lk.rev:
        out["rev"] = str(lk.rev)
    if lk.lease:
        out["lease"] = str(lk.lease)
    return out


async def campaign(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    lease = to_int(body.get("lease"), "lease")
    value = unb64(body.get("value"), "value")
    res = await gw.s.recipes.campaign(name, lease, value)
    return {"header": gw.header_of(res), "leader": _leader_key(res.response)}


def _parse_leader(body: dict[str, Any]) -> LeaderKey:
    if body.get("leader") is None:
        raise EtcdError(GrpcStatus.UNKNOWN, MSG_MISSING_LEADER)
    lk = obj(body["leader"])
    name = unb64(lk.get("name"), "name")
    lease = to_int(lk.get("lease"), "lease")
    return LeaderKey(name, unb64(lk.get("key"), "key"), to_int(lk.get("rev"), "rev"), lease)


async def proclaim(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    leader = _parse_leader(body)
    res = await gw.s.recipes.proclaim(leader, unb64(body.get("value"), "value"))
    return {"header": gw.header_of(res)}


async def resign(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = await gw.s.recipes.resign(_parse_leader(body))
    return {"header": gw.header_of(res)}


async def leader(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    res = await gw.s.recipes.leader(name)
    return {"header": gw.header_of(res), "kv": kv_json(res.response)}


async def observe(
    gw: Gateway, body: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    """Send the leader's kv now (if any) and again whenever it or its value changes."""
    name = unb64(body.get("name"), "name")
    async for res in gw.s.recipes.observe(name):
        await send({"header": gw.header_of(res), "kv": kv_json(res.response)})
