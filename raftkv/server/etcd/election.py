"""/v3/election/*: etcd's v3election service (concurrency.Election) over raftkv.

Like v3lock, a candidate's key is `name + "/" + hex(lease)`; the leader is the key
under `name/` with the lowest create revision. Campaign blocks until this candidate
leads; observe streams the leader's key-value whenever it changes. Errors from the
election itself are plain errors in etcd, hence gRPC Unknown (HTTP 500).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from raftkv.server.etcd.encode import kv as kv_json
from raftkv.server.etcd.errors import EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, obj, to_int, unb64
from raftkv.server.etcd.lock import wait_turn
from raftkv.storage import commands as cmds
from raftkv.storage.errors import LeaseNotFoundError
from raftkv.storage.results import KeyValue, RangeResponse, TxnResponse

MSG_NOT_LEADER = "election: not leader"
MSG_NO_LEADER = "election: no leader"
MSG_MISSING_LEADER = '"leader" field must be provided'


def _unknown(message: str) -> EtcdError:
    return EtcdError(GrpcStatus.UNKNOWN, message)


def _leader_key(name: bytes, key: bytes, rev: int, lease: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if name:
        out["name"] = b64(name)
    if key:
        out["key"] = b64(key)
    if rev:
        out["rev"] = str(rev)
    if lease:
        out["lease"] = str(lease)
    return out


async def _propose(gw: Gateway, cmd: Any) -> Any:
    try:
        return await gw.propose(cmd)
    except EtcdError as e:
        if e.code == GrpcStatus.NOT_FOUND:
            raise _unknown(e.message) from None
        raise


async def campaign(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    lease = to_int(body.get("lease"), "lease")
    value = unb64(body.get("value"), "value")
    await gw.linearize(False)  # a lagging follower must not miss a fresh lease
    if gw.node.mvcc.lease_get(lease) is None:
        raise _unknown(LeaseNotFoundError.default_message)
    prefix = name + b"/"
    key = prefix + f"{lease:x}".encode()
    txn = cmds.Txn(
        (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, 0),),
        (cmds.Put(key, value, lease=lease),),
        (cmds.Range(key),),
    )
    res = await _propose(gw, txn)
    tr = res.response
    assert isinstance(tr, TxnResponse)
    header = gw.header(res.revision)
    rev = res.revision
    if not tr.succeeded:
        rr = tr.responses[0]
        assert isinstance(rr, RangeResponse) and rr.kvs
        rev = rr.kvs[0].create_revision
        if rr.kvs[0].value != value:
            await _proclaim(gw, key, rev, value)
    try:
        await wait_turn(gw, prefix, rev)
    except asyncio.CancelledError:
        task = asyncio.ensure_future(gw.propose(cmds.DeleteRange(key), growing=False))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise
    return {"header": header, "leader": _leader_key(name, key, rev, lease)}


def _parse_leader(body: dict[str, Any]) -> tuple[bytes, int]:
    if body.get("leader") is None:
        raise _unknown(MSG_MISSING_LEADER)
    lk = obj(body["leader"])
    unb64(lk.get("name"), "name")
    to_int(lk.get("lease"), "lease")
    return unb64(lk.get("key"), "key"), to_int(lk.get("rev"), "rev")


async def _proclaim(gw: Gateway, key: bytes, rev: int, value: bytes) -> int:
    txn = cmds.Txn(
        (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, rev),),
        (cmds.Put(key, value, ignore_lease=True),),
        (),
    )
    res = await _propose(gw, txn)
    assert isinstance(res.response, TxnResponse)
    if not res.response.succeeded:
        raise _unknown(MSG_NOT_LEADER)
    return res.revision


async def proclaim(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    key, rev = _parse_leader(body)
    revision = await _proclaim(gw, key, rev, unb64(body.get("value"), "value"))
    return {"header": gw.header(revision)}


async def resign(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    key, rev = _parse_leader(body)
    txn = cmds.Txn(
        (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, rev),),
        (cmds.DeleteRange(key),),
        (),
    )
    res = await _propose(gw, txn)
    return {"header": gw.header(res.revision)}


def _current_leader(gw: Gateway, name: bytes) -> tuple[int, KeyValue | None]:
    prefix = name + b"/"
    r = gw.node.mvcc.range(
        prefix,
        cmds.prefix_end(prefix),
        limit=1,
        sort_order=cmds.SortOrder.ASCEND,
        sort_target=cmds.SortTarget.CREATE,
    )
    return r.revision, (r.kvs[0] if r.kvs else None)


async def leader(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    await gw.linearize(False)
    revision, kv = _current_leader(gw, name)
    if kv is None:
        raise _unknown(MSG_NO_LEADER)
    return {"header": gw.header(revision), "kv": kv_json(kv)}


async def observe(
    gw: Gateway, body: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    """Send the leader's kv now (if any) and again whenever it or its value changes."""
    name = unb64(body.get("name"), "name")
    prefix = name + b"/"
    hub = gw.node.hub
    sub = hub.subscribe(prefix, cmds.prefix_end(prefix))
    last: KeyValue | None = None
    try:
        while True:
            revision, kv = _current_leader(gw, name)
            if kv is not None and kv != last:
                await send({"header": gw.header(revision), "kv": kv_json(kv)})
                last = kv
            if await sub.queue.get() is None:
                hub.unsubscribe(sub)
                sub = hub.subscribe(prefix, cmds.prefix_end(prefix))
    finally:
        hub.unsubscribe(sub)
