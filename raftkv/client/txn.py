"""A small transaction builder that renders the `POST /v1/txn` JSON body.

    await client.txn().if_(Compare.value("k") == b"v", Compare.mod_revision("k") < 5)
        .then(Op.put("k", b"w")).else_(Op.get("k")).commit()

Keys and values are always sent as base64 (`*_b64`), so binary data round-trips.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Bytes = bytes | str
R = TypeVar("R")


def to_bytes(v: Bytes) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else v


def _b64(v: Bytes) -> str:
    return base64.b64encode(to_bytes(v)).decode("ascii")


class Compare:
    """One side of a comparison; an operator (==, !=, <, >) turns it into a condition."""

    _FIELDS = {
        "VALUE": "value",
        "VERSION": "version",
        "CREATE": "create_revision",
        "MOD": "mod_revision",
        "LEASE": "lease",
    }

    def __init__(self, target: str, key: Bytes, prefix: bool = False) -> None:
        self.target = target
        self.key = key
        self.prefix = prefix

    @classmethod
    def value(cls, key: Bytes) -> Compare:
        return cls("VALUE", key)

    @classmethod
    def version(cls, key: Bytes) -> Compare:
        return cls("VERSION", key)

    @classmethod
    def create_revision(cls, key: Bytes) -> Compare:
        return cls("CREATE", key)

    @classmethod
    def mod_revision(cls, key: Bytes) -> Compare:
        return cls("MOD", key)

    @classmethod
    def lease(cls, key: Bytes) -> Compare:
        return cls("LEASE", key)

    def _cond(self, result: str, operand: Bytes | int) -> dict[str, Any]:
        d: dict[str, Any] = {"key_b64": _b64(self.key), "target": self.target, "result": result}
        if self.prefix:
            d["prefix"] = True
        if self.target == "VALUE":
            if isinstance(operand, int):
                raise TypeError("a VALUE compare needs bytes or str")
            d["value_b64"] = _b64(operand)
        else:
            if not isinstance(operand, int) or isinstance(operand, bool):
                raise TypeError(f"a {self.target} compare needs an int")
            d[self._FIELDS[self.target]] = operand
        return d

    def __eq__(self, other: object) -> dict[str, Any]:  # type: ignore[override]
        return self._cond("EQUAL", other)  # type: ignore[arg-type]

    def __ne__(self, other: object) -> dict[str, Any]:  # type: ignore[override]
        return self._cond("NOT_EQUAL", other)  # type: ignore[arg-type]

    def __lt__(self, other: Bytes | int) -> dict[str, Any]:
        return self._cond("LESS", other)

    def __gt__(self, other: Bytes | int) -> dict[str, Any]:
        return self._cond("GREATER", other)

    __hash__ = None  # type: ignore[assignment]


class Op:
    """Operations of a txn branch, as the JSON the server parses."""

    @staticmethod
    def put(key: Bytes, value: Bytes, lease: int = 0, prev_kv: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"key_b64": _b64(key), "value_b64": _b64(value)}
        if lease:
            body["lease"] = lease
        if prev_kv:
            body["prev_kv"] = True
        return {"put": body}

    @staticmethod
    def delete(key: Bytes, prefix: bool = False, prev_kv: bool = False) -> dict[str, Any]:
        return {"delete": {"key_b64": _b64(key), "prefix": prefix, "prev_kv": prev_kv}}

    @staticmethod
    def get(
        key: Bytes, prefix: bool = False, keys_only: bool = False, limit: int = 0
    ) -> dict[str, Any]:
        body = {"key_b64": _b64(key), "prefix": prefix, "keys_only": keys_only, "limit": limit}
        return {"range": body}

    @staticmethod
    def txn(
        compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return {"txn": {"compare": compare, "success": success, "failure": failure}}


class Txn(Generic[R]):
    """Accumulates compare/success/failure; `commit()` hands the body to the client."""

    def __init__(self, commit: Callable[[dict[str, Any]], R]) -> None:
        self._commit = commit
        self.compare: list[dict[str, Any]] = []
        self.success: list[dict[str, Any]] = []
        self.failure: list[dict[str, Any]] = []

    def if_(self, *conds: dict[str, Any]) -> Txn[R]:
        self.compare.extend(conds)
        return self

    def then(self, *ops: dict[str, Any]) -> Txn[R]:
        self.success.extend(ops)
        return self

    def else_(self, *ops: dict[str, Any]) -> Txn[R]:
        self.failure.extend(ops)
        return self

    def body(self) -> dict[str, Any]:
        return {"compare": self.compare, "success": self.success, "failure": self.failure}

    def commit(self) -> R:
        return self._commit(self.body())
