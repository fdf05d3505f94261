"""What the state machine hands back: key-values, events, responses, apply results.

Field names and order follow etcd's mvccpb/rpc.proto so the gateway can serialise them
directly. The small values that are built once per written key (KeyValue, Event) are
NamedTuples: immutable (the watch hub shares one event among many watchers) and about
four times cheaper to build than frozen dataclasses on the apply hot path. Responses
are slotted dataclasses; treat them as read-only.

Responses and errors have a compact msgpack form (`encode_outcome`/`decode_outcome`)
because the dedup table persists the first result of every request id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import msgpack

from raftkv.errors import RaftkvError, from_wire
from raftkv.storage.commands import Tag


class EventType(IntEnum):
    PUT = 0
    DELETE = 1


class KeyValue(NamedTuple):
    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0


class Event(NamedTuple):
    """One key changed at one revision.

    For DELETE, `kv` holds only the key and the deletion revision (as etcd sends it);
    `prev_kv` is the key's value just before the change, or None if it had none.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class EventPage(NamedTuple):
    """Historical events, and the revision up to which the scan is complete.

    `last_revision` lets a watcher resume at `last_revision + 1` even when no event in
    the scanned revisions matched its key range.
    """

    events: list[Event]
    last_revision: int


class LeaseInfo(NamedTuple):
    id: int
    ttl: int  # granted TTL, seconds
    remaining_ttl: int  # last checkpointed remaining TTL; 0 = never checkpointed
    keys: tuple[bytes, ...] = ()


@dataclass(slots=True)
class RangeResponse:
    revision: int
    kvs: list[KeyValue] = field(default_factory=list)
    count: int = 0
    more: bool = False


@dataclass(slots=True)
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass(slots=True)
class DeleteRangeResponse:
    revision: int
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass(slots=True)
class TxnResponse:
    """`revision` of a nested txn is 0, as in etcd 3.4 (its header is left empty)."""

    revision: int
    succeeded: bool = False
    responses: list[Response] = field(default_factory=list)


@dataclass(slots=True)
class CompactResponse:
    revision: int


@dataclass(slots=True)
class LeaseGrantResponse:
    revision: int
    id: int
    ttl: int


@dataclass(slots=True)
class LeaseRevokeResponse:
    revision: int


@dataclass(slots=True)
class LeaseCheckpointResponse:
    revision: int


@dataclass(slots=True)
class NoopResponse:
    revision: int


@dataclass(slots=True)
class AlarmResponse:
    """The alarms active after the command: (member id, alarm type) pairs."""

    revision: int
    alarms: list[tuple[int, int]] = field(default_factory=list)


Response = (
    RangeResponse
    | PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | LeaseCheckpointResponse
    | NoopResponse
    | AlarmResponse
)


@dataclass(slots=True)
class ApplyResult:
    """The outcome of one committed entry.

    Exactly one of `response` / `error` is set for a command; both are None for an
    empty (no-op) entry and for an entry skipped because it was already applied.
    `revision` is the store revision after the entry (the header revision to report).
    `events` are the changes this entry made, in order, all at one revision; they are
    empty for reads, failed commands and duplicates. `duplicate` marks an answer
    replayed from the dedup table.
    """

    index: int
    revision: int
    response: Response | None = None
    error: RaftkvError | None = None
    events: list[Event] = field(default_factory=list)
    request_id: bytes | None = None
    duplicate: bool = False
    skipped: bool = False


# --- persisted form (dedup table) ------------------------------------------------------

_ERROR = 255


def _kv(kv: KeyValue | None) -> list[object] | None:
    return None if kv is None else list(kv)


def _unkv(raw: list | None) -> KeyValue | None:  # type: ignore[type-arg]
    return None if raw is None else KeyValue(*raw)


def _resp_raw(r: Response) -> list[object]:
    if isinstance(r, PutResponse):
        return [Tag.PUT, r.revision, _kv(r.prev_kv)]
    if isinstance(r, RangeResponse):
        return [Tag.RANGE, r.revision, [list(kv) for kv in r.kvs], r.count, r.more]
    if isinstance(r, DeleteRangeResponse):
        return [Tag.DELETE_RANGE, r.revision, r.deleted, [list(kv) for kv in r.prev_kvs]]
    if isinstance(r, TxnResponse):
        return [Tag.TXN, r.revision, r.succeeded, [_resp_raw(x) for x in r.responses]]
    if isinstance(r, CompactResponse):
        return [Tag.COMPACT, r.revision]
    if isinstance(r, LeaseGrantResponse):
        return [Tag.LEASE_GRANT, r.revision, r.id, r.ttl]
    if isinstance(r, LeaseRevokeResponse):
        return [Tag.LEASE_REVOKE, r.revision]
    if isinstance(r, LeaseCheckpointResponse):
        return [Tag.LEASE_CHECKPOINT, r.revision]
    if isinstance(r, NoopResponse):
        return [Tag.NOOP, r.revision]
    if isinstance(r, AlarmResponse):
        return [Tag.ALARM, r.revision, [list(a) for a in r.alarms]]
    raise TypeError(f"not a response: {r!r}")


def _resp_from_raw(raw: list) -> Response:  # type: ignore[type-arg]
    tag = raw[0]
    if tag == Tag.PUT:
        return PutResponse(raw[1], _unkv(raw[2]))
    if tag == Tag.RANGE:
        return RangeResponse(raw[1], [KeyValue(*kv) for kv in raw[2]], raw[3], raw[4])
    if tag == Tag.DELETE_RANGE:
        return DeleteRangeResponse(raw[1], raw[2], [KeyValue(*kv) for kv in raw[3]])
    if tag == Tag.TXN:
        return TxnResponse(raw[1], raw[2], [_resp_from_raw(x) for x in raw[3]])
    if tag == Tag.COMPACT:
        return CompactResponse(raw[1])
    if tag == Tag.LEASE_GRANT:
        return LeaseGrantResponse(raw[1], raw[2], raw[3])
    if tag == Tag.LEASE_REVOKE:
        return LeaseRevokeResponse(raw[1])
    if tag == Tag.LEASE_CHECKPOINT:
        return LeaseCheckpointResponse(raw[1])
    if tag == Tag.NOOP:
        return NoopResponse(raw[1])
    if tag == Tag.ALARM:
        return AlarmResponse(raw[1], [(m, a) for m, a in raw[2]])
    raise ValueError(f"unknown response tag {tag}")


def encode_outcome(revision: int, response: Response | None, error: RaftkvError | None) -> bytes:
    """The part of an ApplyResult a duplicate request gets back."""
    body: list[object]
    if error is not None:
        body = [_ERROR, error.to_wire()]
    elif response is not None:
        body = _resp_raw(response)
    else:
        body = []
    return msgpack.packb([revision, body], use_bin_type=True)


def decode_outcome(buf: bytes) -> tuple[int, Response | None, RaftkvError | None]:
    revision, body = msgpack.unpackb(buf, raw=False)
    if not body:
        return revision, None, None
    if body[0] == _ERROR:
        return revision, None, from_wire(body[1])
    return revision, _resp_from_raw(body), None
