"""/v3/kv/*: Range, Put, DeleteRange, Txn, Compaction.

Requests are validated the way etcd's v3rpc layer does (before Raft), so the error
for a bad request is etcd's and nothing is proposed for it.
"""

from __future__ import annotations

from typing import Any

from raftkv.server.etcd.encode import response_body
from raftkv.server.etcd.errors import MSG_KEY_NOT_FOUND, EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, obj, rejected, to_bool, to_enum, to_int, unb64
from raftkv.storage import commands as cmds

MSG_EMPTY_KEY = "etcdserver: key is not provided"


def _key(body: dict[str, Any]) -> bytes:
    key = unb64(body.get("key"), "key")
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return key


def make_range(
    key: bytes,
    range_end: bytes,
    revision: int,
    limit: int,
    sort_order: cmds.SortOrder,
    sort_target: cmds.SortTarget,
    keys_only: bool,
    count_only: bool,
    min_mod_revision: int,
    max_mod_revision: int,
    min_create_revision: int,
    max_create_revision: int,
) -> cmds.Range:
    """etcd's reading of a RangeRequest's fields, for both etcd faces."""
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return cmds.Range(
        key,
        range_end,
        # etcd reads a revision <= 0 as "current" and a limit <= 0 as "no limit"
        revision=max(0, revision),
        limit=max(0, limit),
        sort_order=sort_order,
        sort_target=sort_target,
        keys_only=keys_only,
        count_only=count_only,
        min_mod_revision=max(0, min_mod_revision),
        max_mod_revision=max_mod_revision,
        min_create_revision=max(0, min_create_revision),
        max_create_revision=max_create_revision,
    )


def parse_range(b: dict[str, Any]) -> cmds.Range:
    # fields are decoded in proto order so the first bad one is reported
    return make_range(
        unb64(b.get("key"), "key"),
        unb64(b.get("range_end"), "range_end"),
        to_int(b.get("revision"), "revision"),
        to_int(b.get("limit"), "limit"),
        sort_order(b.get("sort_order")),
        sort_target(b.get("sort_target")),
        to_bool(b.get("keys_only"), "keys_only"),
        to_bool(b.get("count_only"), "count_only"),
        to_int(b.get("min_mod_revision"), "min_mod_revision"),
        to_int(b.get("max_mod_revision"), "max_mod_revision"),
        to_int(b.get("min_create_revision"), "min_create_revision"),
        to_int(b.get("max_create_revision"), "max_create_revision"),
    )


def sort_order(v: Any) -> cmds.SortOrder:
    return to_enum(v, cmds.SortOrder, "etcdserverpb.RangeRequest_SortOrder")


def sort_target(v: Any) -> cmds.SortTarget:
    return to_enum(v, cmds.SortTarget, "etcdserverpb.RangeRequest_SortTarget")


def make_put(
    key: bytes, value: bytes, lease: int, prev_kv: bool, ignore_value: bool, ignore_lease: bool
) -> cmds.Put:
    """etcd's reading of a PutRequest's fields, for both etcd faces."""
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    if ignore_value and value:
        raise rejected("etcdserver: value is provided")
    if ignore_lease and lease:
        raise rejected("etcdserver: lease is provided")
    if lease < 0:  # no such lease can exist
        raise EtcdError(GrpcStatus.NOT_FOUND, "etcdserver: requested lease not found")
    return cmds.Put(
        key,
        value,
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


def parse_put(b: dict[str, Any]) -> cmds.Put:
    return make_put(
        unb64(b.get("key"), "key"),
        unb64(b.get("value"), "value"),
        to_int(b.get("lease"), "lease"),
        to_bool(b.get("prev_kv"), "prev_kv"),
        to_bool(b.get("ignore_value"), "ignore_value"),
        to_bool(b.get("ignore_lease"), "ignore_lease"),
    )


def make_delete(key: bytes, range_end: bytes, prev_kv: bool) -> cmds.DeleteRange:
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return cmds.DeleteRange(key, range_end, prev_kv=prev_kv)


def parse_delete(b: dict[str, Any]) -> cmds.DeleteRange:
    return make_delete(
        unb64(b.get("key"), "key"),
        unb64(b.get("range_end"), "range_end"),
        to_bool(b.get("prev_kv"), "prev_kv"),
    )


OPERAND = {
    cmds.CompareTarget.VERSION: "version",
    cmds.CompareTarget.CREATE: "create_revision",
    cmds.CompareTarget.MOD: "mod_revision",
    cmds.CompareTarget.VALUE: "value",
    cmds.CompareTarget.LEASE: "lease",
}


def compare_result(v: Any) -> cmds.CompareResult:
    return to_enum(v, cmds.CompareResult, "etcdserverpb.Compare_CompareResult")


def compare_target(v: Any) -> cmds.CompareTarget:
    return to_enum(v, cmds.CompareTarget, "etcdserverpb.Compare_CompareTarget")


def make_compare(
    key: bytes,
    target: cmds.CompareTarget,
    result: cmds.CompareResult,
    operand: int | bytes,
    range_end: bytes,
) -> cmds.Compare:
    """The operand is the field the target names, whichever one the client set."""
    if not key:
        raise rejected(MSG_EMPTY_KEY)
    return cmds.Compare(key, target, result, operand, range_end)


def parse_compare(b: dict[str, Any]) -> cmds.Compare:
    result = compare_result(b.get("result"))
    target = compare_target(b.get("target"))
    key = unb64(b.get("key"), "key")
    field = OPERAND[target]
    operand: int | bytes
    if target == cmds.CompareTarget.VALUE:
        operand = unb64(b.get("value"), "value")
    else:
        operand = to_int(b.get(field), field)
    return make_compare(key, target, result, operand, unb64(b.get("range_end"), "range_end"))


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
    return cmds.Txn(compares, success, failure)


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


def check_size(gw: Gateway, op: cmds.TxnOp) -> None:
    """etcd's two limits: gRPC's receive limit (the request limit + 512 KiB,
    ResourceExhausted) and --max-request-bytes on the proposal (InvalidArgument)."""
    size = proto_size(op)
    limit = gw.s.limits.max_request_bytes
    grpc_max = limit + 512 * 1024
    if size > grpc_max:
        raise EtcdError(
            GrpcStatus.RESOURCE_EXHAUSTED,
            f"grpc: received message larger than max ({size} vs. {grpc_max})",
        )
    if size > limit:
        raise EtcdError(GrpcStatus.INVALID_ARGUMENT, "etcdserver: request is too large")


async def kv_range(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    r = parse_range(body)
    res = await gw.s.kv.range(r, to_bool(body.get("serializable"), "serializable"))
    return response_body(res.response, gw.header_of(res))


async def kv_put(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    put = parse_put(body)
    check_size(gw, put)
    res = await gw.s.kv.put(put)
    return response_body(res.response, gw.header_of(res))


async def kv_delete(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    d = parse_delete(body)
    check_size(gw, d)
    res = await gw.s.kv.delete_range(d)
    return response_body(res.response, gw.header_of(res))


async def kv_txn(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    t = parse_txn(body)
    check_size(gw, t)
    res = await gw.s.kv.txn(t)
    return response_body(res.response, gw.header_of(res))


async def kv_compact(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    rev = to_int(body.get("revision"), "revision")
    physical = to_bool(body.get("physical"), "physical")
    res = await gw.s.kv.compact(rev, physical)
    return {"header": gw.header_of(res)}
