"""/v3/lease/* (and the /v3/kv/lease/* aliases): grant, revoke, timetolive, leases,
keepalive — parse, call the lease service, encode etcd's shapes."""

from __future__ import annotations

from typing import Any

from raftkv.errors import LeaseNotFound
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, to_bool, to_int


async def lease_grant(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    ttl = to_int(body.get("TTL"), "TTL")
    lid = to_int(body.get("ID"), "ID")
    res = await gw.s.lease.grant(max(0, ttl), lid)
    r = res.response
    return {"header": gw.header_of(res), "ID": str(r.id), "TTL": str(r.ttl)}


async def lease_revoke(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    lid = to_int(body.get("ID"), "ID")
    res = await gw.s.lease.revoke(lid)
    return {"header": gw.header_of(res)}


async def lease_timetolive(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """An unknown lease is a success with TTL -1, as in etcd."""
    lid = to_int(body.get("ID"), "ID")
    want_keys = to_bool(body.get("keys"), "keys")
    try:
        res = await gw.s.lease.time_to_live(lid, want_keys)
    except LeaseNotFound:
        out: dict[str, Any] = {"header": gw.header()}
        if lid:
            out["ID"] = str(lid)
        out["TTL"] = "-1"
        return out
    st = res.response
    out = {"header": gw.header_of(res), "ID": str(lid)}
    if st.ttl:
        out["TTL"] = str(st.ttl)
    out["grantedTTL"] = str(st.granted_ttl)
    if st.keys:
        out["keys"] = [b64(k) for k in st.keys]
    return out


async def lease_leases(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = await gw.s.lease.leases()
    out: dict[str, Any] = {"header": gw.header_of(res)}
    if res.response:
        out["leases"] = [{"ID": str(i)} for i in res.response]
    return out


async def keepalive_once(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """One LeaseKeepAliveResponse: an unknown lease is a result without TTL, as in etcd."""
    lid = to_int(body.get("ID"), "ID")
    try:
        res = await gw.s.lease.keepalive(lid)
        ttl = res.response
    except LeaseNotFound:
        ttl = 0
    out: dict[str, Any] = {"header": gw.header()}
    if lid:
        out["ID"] = str(lid)
    if ttl:
        out["TTL"] = str(ttl)
    return out
