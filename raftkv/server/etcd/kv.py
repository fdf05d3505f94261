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
from raftkv.storage.errors import MSG_EMPTY_KEY, LeaseNotFoundError, MvccError

MAX_TXN_OPS = 128  # etcd's --max-txn-ops default
MAX_REQUEST = 3 * 512 * 1024  # etcd's --max-request-bytes default
GRPC_MAX_RECV = MAX_REQUEST + 512 * 1024  # etcd's gRPC MaxRecvMsgSize


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
        # etcd reads a revision <= 0 as "current" and a limit <= 0 as "no limit"
        revision=max(0, to_int(b.get("revision"), "revision")),
        limit=max(0, to_int(b.get("limit"), "limit")),
        sort_order=to_enum(
            b.get("sort_order"), cmds.SortOrder, "etcdserverpb.RangeRequest_SortOrder"
        ),
        sort_target=to_enum(
            b.get("sort_target"), cmds.SortTarget, "etcdserverpb.RangeRequest_SortTarget"
        ),
        keys_only=to_bool(b.get("keys_only"), "keys_only"),
        count_only=to_bool(b.get("count_only"), "count_only"),
        min_mod_revision=max(0, to_int(b.get("min_mod_revision"), "min_mod_revision")),
        max_mod_revision=to_int(b.get("max_mod_revision"), "max_mod_revision"),
        min_create_revision=max(0, to_int(b.get("min_create_revision"), "min_create_revision")),
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
    if p.lease < 0:  # no such lease can exist; raftkv's store would call it malformed
        raise EtcdError.from_mvcc(LeaseNotFoundError())
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


def _vlen(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7) if n >= 0 else 10


def _b(field: int, b: bytes) -> int:
    return (1 if field < 16 else 2) + _vlen(len(b)) + len(b) if b else 0


def _i(field: int, v: int) -> int:
    return (1 if field < 16 else 2) + _vlen(v) if v else 0


def _msg(field: int, size: int) -> int:
    return 1 + _vlen(size) + size


def proto_size(op: cmds.TxnOp | cmds.Compare) -> int:
    """The request's protobuf size: what etcd's gRPC and request-size limits measure."""
    if isinstance(op, cmds.Put):
        flags = (op.prev_kv, op.ignore_value, op.ignore_lease)
        return _b(1, op.key) + _b(2, op.value) + _i(3, op.lease) + 2 * sum(flags)
    if isinstance(op, cmds.DeleteRange):
        return _b(1, op.key) + _b(2, op.range_end) + 2 * op.prev_kv
    if isinstance(op, cmds.Range):
        ints = (op.limit, op.revision, int(op.sort_order), int(op.sort_target))
        return (
            _b(1, op.key)
            + _b(2, op.range_end)
            + sum(_i(3, v) for v in ints)
            + 2 * (op.keys_only + op.count_only)
            + sum(
                _i(10, v)
                for v in (
                    op.min_mod_revision,
                    op.max_mod_revision,
                    op.min_create_revision,
                    op.max_create_revision,
                )
            )
        )
    if isinstance(op, cmds.Compare):
        operand = _b(7, op.operand) if isinstance(op.operand, bytes) else _i(4, op.operand)
        rest = _i(1, int(op.result)) + _i(2, int(op.target)) + _b(3, op.key)
        return rest + operand + _b(64, op.range_end)
    compares = sum(_msg(1, proto_size(c)) for c in op.compares)
    ops = sum(_msg(1, _msg(1, proto_size(x))) for x in (*op.success, *op.failure))
    return compares + ops


def check_size(op: cmds.TxnOp) -> None:
    """etcd's two limits: gRPC's receive limit (1.5 MiB + 512 KiB of overhead allowance,
    ResourceExhausted) and --max-request-bytes on the proposal (InvalidArgument)."""
    size = proto_size(op)
    if size > GRPC_MAX_RECV:
        raise EtcdError(
            GrpcStatus.RESOURCE_EXHAUSTED,
            f"grpc: received message larger than max ({size} vs. {GRPC_MAX_RECV})",
        )
    if size > MAX_REQUEST:
        raise EtcdError(GrpcStatus.INVALID_ARGUMENT, "etcdserver: request is too large")


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
    put = parse_put(body)
    check_size(put)
    res = await gw.propose(put)
    assert res.response is not None
    return response_body(res.response, gw.header(res.revision))


async def kv_delete(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    d = parse_delete(body)
    check_size(d)
    res = await gw.propose(d, growing=False)
    assert res.response is not None
    return response_body(res.response, gw.header(res.revision))


async def kv_txn(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    t = parse_txn(body)
    check_size(t)
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
