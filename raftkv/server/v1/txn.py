"""Parsing of the etcd-like JSON transaction body of `POST /v1/txn`.

    {"compare": [{"key": "a", "target": "VALUE", "result": "EQUAL", "value": "x"}],
     "success": [{"put": {"key": "a", "value": "y"}}],
     "failure": [{"range": {"key": "a"}}]}

Keys, range ends and values are UTF-8 strings, or base64 in a `*_b64` field for
binary data. `prefix: true` stands for the range_end that selects the key as a prefix.
Every malformed body raises ApiError(400) with a message that names the bad field;
nesting deeper than MAX_JSON_DEPTH levels of txn is refused before it is walked.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from raftkv.server.v1.errors import bad_request, non_negative_int
from raftkv.service.limits import MAX_JSON_DEPTH
from raftkv.storage.commands import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    Txn,
    TxnOp,
    prefix_end,
)

_RESULTS = {
    "EQUAL": CompareResult.EQUAL,
    "=": CompareResult.EQUAL,
    "==": CompareResult.EQUAL,
    "GREATER": CompareResult.GREATER,
    ">": CompareResult.GREATER,
    "LESS": CompareResult.LESS,
    "<": CompareResult.LESS,
    "NOT_EQUAL": CompareResult.NOT_EQUAL,
    "!=": CompareResult.NOT_EQUAL,
}
_TARGET_FIELDS = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.LEASE: "lease",
}


def get_bytes(d: dict[str, Any], name: str, required: bool = False) -> bytes | None:
    if name + "_b64" in d:
        v = d[name + "_b64"]
        if not isinstance(v, str):
            raise bad_request(f"{name}_b64 must be a base64 string")
        try:
            return base64.b64decode(v.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise bad_request(f"{name}_b64 is not valid base64") from None
    if name in d:
        v = d[name]
        if not isinstance(v, str):
            raise bad_request(f"{name} must be a string (use {name}_b64 for binary)")
        return v.encode("utf-8", "surrogatepass")
    if required:
        raise bad_request(f"missing field {name!r}")
    return None


def _int(d: dict[str, Any], name: str, default: int = 0) -> int:
    return non_negative_int(d.get(name, default), name)


def _bool(d: dict[str, Any], name: str) -> bool:
    v = d.get(name, False)
    if not isinstance(v, bool):
        raise bad_request(f"{name} must be a boolean")
    return v


def _dict(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise bad_request(f"{what} must be an object")
    return v


def _range_end(d: dict[str, Any], key: bytes) -> bytes:
    if _bool(d, "prefix"):
        return prefix_end(key) if key else b"\x00"
    return get_bytes(d, "range_end") or b""


def parse_compare(raw: Any) -> Compare:
    d = _dict(raw, "compare item")
    key = get_bytes(d, "key", required=True) or b""
    try:
        target = CompareTarget[str(d.get("target", "")).upper()]
    except KeyError:
        raise bad_request("compare target must be VERSION, CREATE, MOD, VALUE or LEASE") from None
    result = _RESULTS.get(str(d.get("result", "")).upper())
    if result is None:
        raise bad_request("compare result must be EQUAL, GREATER, LESS or NOT_EQUAL")
    operand: int | bytes
    if target == CompareTarget.VALUE:
        v = get_bytes(d, "value", required=True)
        operand = v if v is not None else b""
    else:
        operand = _int(d, _TARGET_FIELDS[target])
    return Compare(key, target, result, operand, _range_end(d, key))


def parse_op(raw: Any, depth: int = 0) -> TxnOp:
    d = _dict(raw, "txn op")
    if len(d) != 1:
        raise bad_request("each txn op must have exactly one of put, delete, range, txn")
    kind, body = next(iter(d.items()))
    if kind not in ("put", "delete", "range", "txn"):
        raise bad_request(f"unknown txn op {str(kind)[:64]!r}")
    b = _dict(body, kind)
    if kind == "txn":
        return parse_txn(b, depth + 1)
    key = get_bytes(b, "key", required=True) or b""
    if kind == "put":
        return Put(
            key,
            get_bytes(b, "value") or b"",
            lease=_int(b, "lease"),
            prev_kv=_bool(b, "prev_kv"),
            ignore_value=_bool(b, "ignore_value"),
            ignore_lease=_bool(b, "ignore_lease"),
        )
    if kind == "delete":
        return DeleteRange(key, _range_end(b, key), prev_kv=_bool(b, "prev_kv"))
    if kind == "range":
        return Range(
            key,
            _range_end(b, key),
            revision=_int(b, "revision"),
            limit=_int(b, "limit"),
            keys_only=_bool(b, "keys_only"),
            count_only=_bool(b, "count_only"),
        )
    raise bad_request(f"unknown txn op {kind!r}")


def _list(d: dict[str, Any], name: str) -> list[Any]:
    v = d.get(name, [])
    if not isinstance(v, list):
        raise bad_request(f"{name} must be a list")
    return v


def parse_txn(raw: Any, depth: int = 0) -> Txn:
    if depth > MAX_JSON_DEPTH // 4:
        raise bad_request("txn nested too deep")
    d = _dict(raw, "txn body")
    unknown = set(d) - {"compare", "success", "failure"}
    if unknown:
        raise bad_request(f"unknown txn fields: {sorted(map(str, unknown))}")
    return Txn(
        tuple(parse_compare(c) for c in _list(d, "compare")),
        tuple(parse_op(o, depth) for o in _list(d, "success")),
        tuple(parse_op(o, depth) for o in _list(d, "failure")),
    )
