"""Response shapes in etcd's proto field order, zero values omitted.

Field order is not required by clients but copying rpc.proto's keeps byte-diffs
against a real etcd meaningful in the conformance suite.
"""

from __future__ import annotations

from typing import Any

from raftkv.server.etcd.jsonpb import b64
from raftkv.storage.results import (
    CompactResponse,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutResponse,
    RangeResponse,
    Response,
    TxnResponse,
)


def put_nonzero(out: dict[str, Any], name: str, value: Any, as_str: bool = False) -> None:
    """jsonpb's EmitDefaults=false: falsy scalars and empty lists are left out."""
    if value:
        out[name] = str(value) if as_str else value


def kv(k: KeyValue) -> dict[str, Any]:
    out: dict[str, Any] = {}
    put_nonzero(out, "key", b64(k.key) if k.key else "")
    put_nonzero(out, "create_revision", k.create_revision, True)
    put_nonzero(out, "mod_revision", k.mod_revision, True)
    put_nonzero(out, "version", k.version, True)
    put_nonzero(out, "value", b64(k.value) if k.value else "")
    put_nonzero(out, "lease", k.lease, True)
    return out


def event(e: Event, with_prev: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if e.type == EventType.DELETE:
        out["type"] = "DELETE"
    out["kv"] = kv(e.kv)
    if with_prev and e.prev_kv is not None:
        out["prev_kv"] = kv(e.prev_kv)
    return out


def sub_header(revision: int) -> dict[str, Any]:
    """Header of a txn sub-response: only the revision (empty for a nested txn)."""
    return {"revision": str(revision)} if revision else {}


def response_body(r: Response, header: dict[str, Any]) -> dict[str, Any]:
    """A Range/Put/DeleteRange/Txn/Compact response with the given header."""
    out: dict[str, Any] = {"header": header}
    if isinstance(r, RangeResponse):
        if r.kvs:
            out["kvs"] = [kv(x) for x in r.kvs]
        put_nonzero(out, "more", r.more)
        put_nonzero(out, "count", r.count, True)
    elif isinstance(r, PutResponse):
        if r.prev_kv is not None:
            out["prev_kv"] = kv(r.prev_kv)
    elif isinstance(r, DeleteRangeResponse):
        put_nonzero(out, "deleted", r.deleted, True)
        if r.prev_kvs:
            out["prev_kvs"] = [kv(x) for x in r.prev_kvs]
    elif isinstance(r, TxnResponse):
        put_nonzero(out, "succeeded", r.succeeded)
        if r.responses:
            out["responses"] = [response_op(x) for x in r.responses]
    elif isinstance(r, CompactResponse):
        pass
    return out


_OP_NAMES = {
    RangeResponse: "response_range",
    PutResponse: "response_put",
    DeleteRangeResponse: "response_delete_range",
    TxnResponse: "response_txn",
}


def response_op(r: Response) -> dict[str, Any]:
    return {_OP_NAMES[type(r)]: response_body(r, sub_header(r.revision))}
