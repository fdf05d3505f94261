"""/v3/kv/*: Range, Put, DeleteRange, Txn, Compaction.

Requests are validated the way etcd's v3rpc layer does (before Raft), so the error
for a bad request is etcd's and nothing is proposed for it.
"""

from __future__ import annotations

from typing import Any

from raftkv.server.etcd.encode import response_body
from raftkv.server.etcd.errors import MSG_KEY_NOT_FOUND, MSG_TOO_MANY_OPS, EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, obj, rejected, to_bool, to_enum, to_int, unb64
from raftkv.storage import commands as cmds
from raftkv.storage.errors import MSG_EMPTY_KEY, MvccError

MAX_TXN_OPS = 128  # etcd's --max-txn-ops default


def _key(body: dict[str, Any]) -> bytes:
    key = unb64(body.get("key"), "key")
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return key


def parse_range(b: dict[str, Any]) -> cmds.Range:
    # bytes fields are decoded in proto order so the first bad one is reported
    key = unb64(b.get("key"), "key")
    range_end = unb64(b.get("range_end"), "range_end")
    r = cmds.Range(
        key,
        range_end,
        revision=to_int(b.get("revision"), "revision"),
        limit=to_int(b.get("limit"), "limit"),
        sort_order=to_enum(
            b.get("sort_order"), cmds.SortOrder, "etcdserverpb.RangeRequest_SortOrder"
        ),
        sort_target=to_enum(
            b.get("sort_target"), cmds.SortTarget, "etcdserverpb.RangeRequest_SortTarget"
        ),
        keys_only=to_bool(b.get("keys_only"), "keys_only"),
        count_only=to_bool(b.get("count_only"), "count_only"),
        min_mod_revision=to_int(b.get("min_mod_revision"), "min_mod_revision"),
        max_mod_revision=to_int(b.get("max_mod_revision"), "max_mod_revision"),
        min_create_revision=to_int(b.get("min_create_revision"), "min_create_revision"),
        max_create_revision=to_int(b.get("max_create_revision"), "max_create_revision"),
    )
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return r


def parse_put(b: dict[str, Any]) -> cmds.Put:
    key = unb64(b.get("key"), "key")
    value = unb64(b.get("value"), "value")
    p = cmds.Put(
        key,
        value,
        lease=to_int(b.get("lease"), "lease"),
        prev_kv=to_bool(b.get("prev_kv"), "prev_kv"),
        ignore_value=to_bool(b.get("ignore_value"), "ignore_value"),
        ignore_lease=to_bool(b.get("ignore_lease"), "ignore_lease"),
    )
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    if p.ignore_value and p.value:
        raise rejected("etcdserver: value is provided")
    if p.ignore_lease and p.lease:
        raise rejected("etcdserver: lease is provided")
    return p


def parse_delete(b: dict[str, Any]) -> cmds.DeleteRange:
    key = unb64(b.get("key"), "key")
    d = cmds.DeleteRange(
        key, unb64(b.get("range_end"), "range_end"), prev_kv=to_bool(b.get("prev_kv"), "prev_kv")
    )
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return d


_OPERAND = {
    cmds.CompareTarget.VERSION: "version",
    cmds.CompareTarget.CREATE: "create_revision",
    cmds.CompareTarget.MOD: "mod_revision",
    cmds.CompareTarget.VALUE: "value",
    cmds.CompareTarget.LEASE: "lease",
}


def parse_compare(b: dict[str, Any]) -> cmds.Compare:
    result = to_enum(b.get("result"), cmds.CompareResult, "etcdserverpb.Compare_CompareResult")
    target = to_enum(b.get("target"), cmds.CompareTarget, "etcdserverpb.Compare_CompareTarget")
    key = unb64(b.get("key"), "key")
    field = _OPERAND[target]
    operand: int | bytes
    if target == cmds.CompareTarget.VALUE:
        operand = unb64(b.get("value"), "value")
    else:
        operand = to_int(b.get(field), field)
    range_end = unb64(b.get("range_end"), "range_end")
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return cmds.Compare(key, target, result, operand, range_end)


def parse_op(b: dict[str, Any]) -> cmds.TxnOp:
    if b.get("request_range") is not None:
        return parse_range(obj(b["request_range"]))
    if b.get("request_put") is not None:
        return parse_put(obj(b["request_put"]))
    if b.get("request_delete_range") is not None:
        return parse_delete(obj(b["request_delete_range"]))
    if b.get("request_txn") is not None:
        return parse_txn(obj(b["request_txn"]))
    raise rejected(MSG_KEY_NOT_FOUND)  # etcd's checkRequestOp on an empty op


def parse_txn(b: dict[str, Any]) -> cmds.Txn:
    compares = tuple(parse_compare(obj(c)) for c in arr(b.get("compare")))
    success = tuple(parse_op(obj(o)) for o in arr(b.get("success")))
    failure = tuple(parse_op(obj(o)) for o in arr(b.get("failure")))
    if max(len(compares), len(success), len(failure)) > MAX_TXN_OPS:
        raise rejected(MSG_TOO_MANY_OPS)
    t = cmds.Txn(compares, success, failure)
    try:
        cmds.validate(t, 1 << 20)
    except MvccError as e:
        raise EtcdError.from_mvcc(e) from None
    return t


def _has_put(t: cmds.Txn) -> bool:
    for op in (*t.success, *t.failure):
        if isinstance(op, cmds.Put) or (isinstance(op, cmds.Txn) and _has_put(op)):
            return True
    return False


async def kv_range(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    r = parse_range(body)
    await gw.linearize(to_bool(body.get("serializable"), "serializable"))
    try:
        resp = gw.node.mvcc.range(
            r.key,
            r.range_end,
            r.revision,
            r.limit,
            r.keys_only,
            r.count_only,
            r.sort_order,
            r.sort_target,
            r.min_mod_revision,
            r.max_mod_revision,
            r.min_create_revision,
            r.max_create_revision,
        )
    except MvccError as e:
        raise EtcdError.from_mvcc(e) from None
    return response_body(resp, gw.header(resp.revision))


async def kv_put(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = await gw.propose(parse_put(body))
    assert res.response is not None
    return response_body(res.response, gw.header(res.revision))


async def kv_delete(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    res = await gw.propose(parse_delete(body), growing=False)
    assert res.response is not None
    return response_body(res.response, gw.header(res.revision))


async def kv_txn(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    t = parse_txn(body)
    res = await gw.propose(t, growing=_has_put(t))
    assert res.response is not None
    return response_body(res.response, gw.header(res.revision))


async def kv_compact(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    rev = to_int(body.get("revision"), "revision")
    to_bool(body.get("physical"), "physical")
    current = gw.node.mvcc.current_revision()
    if rev > current:
        raise EtcdError(
            GrpcStatus.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"
        )
    if rev <= gw.node.mvcc.compact_revision():
        raise EtcdError(
            GrpcStatus.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"
        )
    res = await gw.propose(cmds.Compact(rev), growing=False)
    return {"header": gw.header(res.revision)}
