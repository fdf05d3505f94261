"""JSON shapes of keys, values, events and responses.

Keys and values are bytes: they are rendered as UTF-8 text when they decode, and
always also as base64 (`key_b64`/`value_b64`) so binary data round-trips exactly.
"""

from __future__ import annotations

import base64
from typing import Any

from raftkv.storage.results import (
    DeleteRangeResponse,
    Event,
    KeyValue,
    PutResponse,
    RangeResponse,
    Response,
    TxnResponse,
)


def text(b: bytes) -> str | None:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return None


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def kv_json(kv: KeyValue, keys_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": text(kv.key),
        "key_b64": b64(kv.key),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "lease": kv.lease,
    }
    if not keys_only:
        out["value"] = text(kv.value)
        out["value_b64"] = b64(kv.value)
    return out


def event_json(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "PUT" if e.type == 0 else "DELETE", "kv": kv_json(e.kv)}
    if e.prev_kv is not None:
        out["prev_kv"] = kv_json(e.prev_kv)
    return out


def response_json(r: Response | None) -> dict[str, Any]:
    if isinstance(r, PutResponse):
        out: dict[str, Any] = {"type": "put", "revision": r.revision}
        if r.prev_kv is not None:
            out["prev_kv"] = kv_json(r.prev_kv)
        return out
    if isinstance(r, RangeResponse):
        return {
            "type": "range",
            "kvs": [kv_json(k) for k in r.kvs],
            "count": r.count,
            "more": r.more,
        }
    if isinstance(r, DeleteRangeResponse):
        return {
            "type": "delete",
            "deleted": r.deleted,
            "prev_kvs": [kv_json(k) for k in r.prev_kvs],
        }
    if isinstance(r, TxnResponse):
        return {
            "type": "txn",
            "succeeded": r.succeeded,
            "responses": [response_json(x) for x in r.responses],
        }
    return {}
