"""/v3/lease/* (and the /v3/kv/lease/* aliases): grant, revoke, timetolive, leases,
keepalive.

Lease clocks run only on the raftkv leader, so remaining TTLs and renewals on a
follower are fetched from the leader's native API instead of guessed locally.
"""

from __future__ import annotations

from typing import Any

from raftkv.server.etcd.errors import EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, to_bool, to_int
from raftkv.storage import commands as cmds
from raftkv.storage.errors import LeaseNotFoundError


async def lease_grant(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    ttl = to_int(body.get("TTL"), "TTL")
    lid = to_int(body.get("ID"), "ID")
    ttl = gw.node.lessor.effective_ttl(ttl)
    res = await gw.propose(cmds.LeaseGrant(ttl, lid))
    r = res.response
    out: dict[str, Any] = {"header": gw.header(res.revision), "ID": str(r.id)}  # type: ignore[union-attr]
    out["TTL"] = str(r.ttl)  # type: ignore[union-attr]
    return out


async def lease_revoke(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    lid = to_int(body.get("ID"), "ID")
    res = await gw.propose(cmds.LeaseRevoke(lid), growing=False)
    return {"header": gw.header(res.revision)}


async def _remaining(gw: Gateway, lid: int) -> int | None:
    """Seconds left on the leader's clock, None if the lease is unknown there."""
    if gw.is_leader:
        if gw.node.mvcc.lease_get(lid) is None:
            return None
        left = gw.node.lessor.remaining(lid)
        if left is None:
            info = gw.node.mvcc.lease_get(lid)
            return info.ttl if info else None
        return left
    status, body = await gw.leader_call("GET", f"/v1/lease/{lid}")
    if status == 404:
        return None
    if status != 200:
        raise EtcdError(GrpcStatus.UNAVAILABLE, "etcdserver: request timed out")
    return int(body["ttl"])


async def lease_timetolive(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    lid = to_int(body.get("ID"), "ID")
    want_keys = to_bool(body.get("keys"), "keys")
    await gw.linearize(False)
    header = gw.header()
    info = gw.node.mvcc.lease_get(lid)
    left = await _remaining(gw, lid) if info is not None else None
    out: dict[str, Any] = {"header": header, "ID": str(lid)} if lid else {"header": header}
    if info is None or left is None:
        out["TTL"] = "-1"
        return out
    if left:
        out["TTL"] = str(left)
    out["grantedTTL"] = str(info.ttl)
    if want_keys and info.keys:
        out["keys"] = [b64(k) for k in info.keys]
    return out


async def lease_leases(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.linearize(False)
    out: dict[str, Any] = {"header": gw.header()}
    ids = gw.node.mvcc.lease_list()
    if ids:
        out["leases"] = [{"ID": str(i)} for i in ids]
    return out


async def keepalive_once(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """One LeaseKeepAliveResponse: an unknown lease is a result without TTL, as in etcd."""
    lid = to_int(body.get("ID"), "ID")
    ttl: int | None
    if gw.is_leader:
        ttl = gw.node.lessor.keepalive(lid)
    else:
        status, answer = await gw.leader_call("POST", f"/v1/lease/{lid}/keepalive")
        ttl = int(answer["ttl"]) if status == 200 else None
    out: dict[str, Any] = {"header": gw.header()}
    if lid:
        out["ID"] = str(lid)
    if ttl:
        out["TTL"] = str(ttl)
    return out


def lease_missing() -> EtcdError:
    return EtcdError.from_mvcc(LeaseNotFoundError())
