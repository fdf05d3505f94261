"""/v3/lock/lock and /v3/lock/unlock: etcd's v3lock service (concurrency.Mutex).

The lock key is `name + "/" + lowercase hex(lease)`, created only if absent; the
holder is the key under `name/` with the lowest create revision, and a waiter waits
for the deletion of the key created just before its own (no thundering herd).
"""

from __future__ import annotations

import asyncio
from typing import Any

from raftkv.server.etcd.errors import EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import b64, rejected, to_int, unb64
from raftkv.storage import commands as cmds
from raftkv.storage.errors import LeaseNotFoundError
from raftkv.storage.results import EventType, RangeResponse, TxnResponse


async def lock(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    name = unb64(body.get("name"), "name")
    lease = to_int(body.get("lease"), "lease")
    await gw.linearize(False)  # a lagging follower must not miss a fresh lease
    if gw.node.mvcc.lease_get(lease) is None:
        # v3lock wraps the session error, so etcd answers Unknown (500), not NotFound
        raise EtcdError(GrpcStatus.UNKNOWN, LeaseNotFoundError.default_message)
    prefix = name + b"/"
    key = prefix + f"{lease:x}".encode()
    txn = cmds.Txn(
        (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, 0),),
        (cmds.Put(key, b"", lease=lease),),
        (cmds.Range(key),),
    )
    try:
        res = await gw.propose(txn)
    except EtcdError as e:
        if e.code == GrpcStatus.NOT_FOUND:
            raise EtcdError(GrpcStatus.UNKNOWN, e.message) from None
        raise
    tr = res.response
    assert isinstance(tr, TxnResponse)
    header = gw.header(res.revision)
    if tr.succeeded:
        my_rev = res.revision
    else:
        rr = tr.responses[0]
        assert isinstance(rr, RangeResponse) and rr.kvs
        my_rev = rr.kvs[0].create_revision
    try:
        waited_until = await wait_turn(gw, prefix, my_rev)
    except asyncio.CancelledError:
        # the client went away while waiting: give the slot back, as Mutex.Lock does
        task = asyncio.ensure_future(gw.propose(cmds.DeleteRange(key), growing=False))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise
    if waited_until is not None:  # etcd's Mutex keeps the header of its last wait
        header = gw.header(waited_until)
    return {"header": header, "key": b64(key)}


async def wait_turn(gw: Gateway, prefix: bytes, my_rev: int) -> int | None:
    """Block until no key under `prefix` is older than ours; None if it never waited,
    else the revision at which the last wait ended."""
    end = cmds.prefix_end(prefix)
    mvcc = gw.node.mvcc
    waited = False
    while True:
        sub = gw.node.hub.subscribe(prefix, end)
        try:
            r = mvcc.range(
                prefix,
                end,
                limit=1,
                sort_order=cmds.SortOrder.DESCEND,
                sort_target=cmds.SortTarget.CREATE,
                max_create_revision=my_rev - 1,
            )
            if not r.kvs:
                return r.revision if waited else None
            waited = True
            waiting_on = r.kvs[0].key
            deleted = False
            while not deleted:
                batch = await sub.queue.get()
                if batch is None:
                    break  # overflowed: re-check from the store
                deleted = any(e.type == EventType.DELETE and e.kv.key == waiting_on for e in batch)
        finally:
            gw.node.hub.unsubscribe(sub)


async def unlock(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    key = unb64(body.get("key"), "key")
    if not key:
        raise rejected("etcdserver: key is not provided")
    res = await gw.propose(cmds.DeleteRange(key), growing=False)
    return {"header": gw.header(res.revision)}
