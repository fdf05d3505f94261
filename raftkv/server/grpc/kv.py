"""KV over gRPC, protobuf in and out (the hot path: no JSON form in between).

Parsing shares the gateway's `make_*` readers (etcd's rules for each field) and the
request-size check; encoding mirrors server/etcd/encode.py for protobuf messages.
"""

from __future__ import annotations

from raftkv.etcdpb import kv_pb2 as mvccpb
from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.server.etcd import kv as gkv
from raftkv.server.etcd.errors import MSG_KEY_NOT_FOUND
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import rejected
from raftkv.service.base import Result
from raftkv.storage import commands as cmds
from raftkv.storage.results import (
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutResponse,
    RangeResponse,
    Response,
    TxnResponse,
)

# --- requests --------------------------------------------------------------------------


def parse_range(m: pb.RangeRequest) -> cmds.Range:
    return gkv.make_range(
        m.key,
        m.range_end,
        m.revision,
        m.limit,
        gkv.sort_order(m.sort_order),
        gkv.sort_target(m.sort_target),
        m.keys_only,
        m.count_only,
        m.min_mod_revision,
        m.max_mod_revision,
        m.min_create_revision,
        m.max_create_revision,
    )


def parse_put(m: pb.PutRequest) -> cmds.Put:
    return gkv.make_put(m.key, m.value, m.lease, m.prev_kv, m.ignore_value, m.ignore_lease)


def parse_delete(m: pb.DeleteRangeRequest) -> cmds.DeleteRange:
    return gkv.make_delete(m.key, m.range_end, m.prev_kv)


def parse_compare(m: pb.Compare) -> cmds.Compare:
    result = gkv.compare_result(m.result)
    target = gkv.compare_target(m.target)
    operand: int | bytes = getattr(m, gkv.OPERAND[target])
    return gkv.make_compare(m.key, target, result, operand, m.range_end)


def parse_op(m: pb.RequestOp) -> cmds.TxnOp:
    which = m.WhichOneof("request")
    if which == "request_range":
        return parse_range(m.request_range)
    if which == "request_put":
        return parse_put(m.request_put)
    if which == "request_delete_range":
        return parse_delete(m.request_delete_range)
    if which == "request_txn":
        return parse_txn(m.request_txn)
    raise rejected(MSG_KEY_NOT_FOUND)  # etcd's checkRequestOp on an empty op


def parse_txn(m: pb.TxnRequest) -> cmds.Txn:
    return cmds.Txn(
        tuple(parse_compare(c) for c in m.compare),
        tuple(parse_op(o) for o in m.success),
        tuple(parse_op(o) for o in m.failure),
    )


# --- responses -------------------------------------------------------------------------


def header(gw: Gateway, revision: int | None = None, term: int | None = None) -> pb.ResponseHeader:
    cluster_id, member_id, rev, raft_term = gw.header_fields(revision, term)
    return pb.ResponseHeader(
        cluster_id=cluster_id, member_id=member_id, revision=rev, raft_term=raft_term
    )


def header_of(gw: Gateway, res: Result[object]) -> pb.ResponseHeader:
    return header(gw, res.revision, res.term)


def kv_pb(k: KeyValue) -> mvccpb.KeyValue:
    return mvccpb.KeyValue(
        key=k.key,
        create_revision=k.create_revision,
        mod_revision=k.mod_revision,
        version=k.version,
        value=k.value,
        lease=k.lease,
    )


def event_pb(e: Event, with_prev: bool) -> mvccpb.Event:
    out = mvccpb.Event(
        type=mvccpb.Event.DELETE if e.type == EventType.DELETE else mvccpb.Event.PUT,
        kv=kv_pb(e.kv),
    )
    if with_prev and e.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_pb(e.prev_kv))
    return out


def range_pb(r: RangeResponse, h: pb.ResponseHeader) -> pb.RangeResponse:
    return pb.RangeResponse(header=h, kvs=[kv_pb(x) for x in r.kvs], more=r.more, count=r.count)


def put_pb(r: PutResponse, h: pb.ResponseHeader) -> pb.PutResponse:
    out = pb.PutResponse(header=h)
    if r.prev_kv is not None:
        out.prev_kv.CopyFrom(kv_pb(r.prev_kv))
    return out


def delete_pb(r: DeleteRangeResponse, h: pb.ResponseHeader) -> pb.DeleteRangeResponse:
    return pb.DeleteRangeResponse(
        header=h, deleted=r.deleted, prev_kvs=[kv_pb(x) for x in r.prev_kvs]
    )


def txn_pb(r: TxnResponse, h: pb.ResponseHeader) -> pb.TxnResponse:
    return pb.TxnResponse(
        header=h, succeeded=r.succeeded, responses=[response_op(x) for x in r.responses]
    )


def response_op(r: Response) -> pb.ResponseOp:
    """A txn sub-response: its header carries only the revision (none when nested)."""
    h = pb.ResponseHeader(revision=r.revision)
    if isinstance(r, RangeResponse):
        return pb.ResponseOp(response_range=range_pb(r, h))
    if isinstance(r, PutResponse):
        return pb.ResponseOp(response_put=put_pb(r, h))
    if isinstance(r, DeleteRangeResponse):
        return pb.ResponseOp(response_delete_range=delete_pb(r, h))
    assert isinstance(r, TxnResponse)
    return pb.ResponseOp(response_txn=txn_pb(r, h))


# --- the RPCs --------------------------------------------------------------------------


async def range_(gw: Gateway, m: pb.RangeRequest) -> pb.RangeResponse:
    res = await gw.s.kv.range(parse_range(m), m.serializable)
    return range_pb(res.response, header_of(gw, res))


async def put(gw: Gateway, m: pb.PutRequest) -> pb.PutResponse:
    p = parse_put(m)
    gkv.check_size(gw, p)
    res = await gw.s.kv.put(p)
    return put_pb(res.response, header_of(gw, res))


async def delete_range(gw: Gateway, m: pb.DeleteRangeRequest) -> pb.DeleteRangeResponse:
    d = parse_delete(m)
    gkv.check_size(gw, d)
    res = await gw.s.kv.delete_range(d)
    return delete_pb(res.response, header_of(gw, res))


async def txn(gw: Gateway, m: pb.TxnRequest) -> pb.TxnResponse:
    t = parse_txn(m)
    gkv.check_size(gw, t)
    res = await gw.s.kv.txn(t)
    return txn_pb(res.response, header_of(gw, res))
