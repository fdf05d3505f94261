"""Typed views of the server's JSON answers (keys and values as exact bytes)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


def _b64(d: dict[str, Any], name: str) -> bytes:
    raw = d.get(name + "_b64")
    if raw is not None:
        return base64.b64decode(raw)
    text = d.get(name)
    return text.encode("utf-8") if isinstance(text, str) else b""


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyValue:
        return cls(
            key=_b64(d, "key"),
            value=_b64(d, "value"),
            create_revision=int(d.get("create_revision", 0)),
            mod_revision=int(d.get("mod_revision", 0)),
            version=int(d.get("version", 0)),
            lease=int(d.get("lease", 0)),
        )

    @property
    def key_str(self) -> str:
        return self.key.decode("utf-8", "replace")

    @property
    def value_str(self) -> str:
        return self.value.decode("utf-8", "replace")

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly dict (text where it decodes), for the CLI's `-w json`."""
        return {
            "key": self.key_str,
            "value": self.value_str,
            "create_revision": self.create_revision,
            "mod_revision": self.mod_revision,
            "version": self.version,
            "lease": self.lease,
        }


@dataclass(frozen=True)
class RangeResult:
    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int


@dataclass(frozen=True)
class PutResult:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(frozen=True)
class DeleteResult:
    deleted: int
    revision: int
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(frozen=True)
class TxnResult:
    """`responses` are the executed branch's results: RangeResult, PutResult, ..."""

    succeeded: bool
    revision: int
    responses: list[Any]


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" or "DELETE"
    kv: KeyValue
    prev_kv: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        prev = d.get("prev_kv")
        return cls(
            str(d["type"]), KeyValue.from_json(d["kv"]), KeyValue.from_json(prev) if prev else None
        )


@dataclass(frozen=True)
class LeaseInfo:
    id: int
    ttl: int
    granted_ttl: int = 0
    keys: list[bytes] = field(default_factory=list)


def response_from_json(d: dict[str, Any]) -> Any:
    """One txn branch response, as the same types the single-op calls return."""
    kind = d.get("type")
    if kind == "range":
        kvs = [KeyValue.from_json(k) for k in d.get("kvs", [])]
        return RangeResult(kvs, int(d.get("count", 0)), bool(d.get("more")), 0)
    if kind == "put":
        prev = d.get("prev_kv")
        return PutResult(int(d.get("revision", 0)), KeyValue.from_json(prev) if prev else None)
    if kind == "delete":
        prevs = [KeyValue.from_json(k) for k in d.get("prev_kvs", [])]
        return DeleteResult(int(d.get("deleted", 0)), 0, prevs)
    if kind == "txn":
        return TxnResult(
            bool(d.get("succeeded")), 0, [response_from_json(r) for r in d.get("responses", [])]
        )
    return d
