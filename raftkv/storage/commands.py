"""Commands proposed through Raft and applied by the MVCC state machine.

A command is a small frozen dataclass. `encode()` turns it into the bytes of a Raft
entry (msgpack: `[tag, request_id, client_id, *fields]`, positional so entries stay
small), and `decode()` turns those bytes back. The encoding is part of the replicated
log, so it never changes meaning: new fields go at the end with defaults, new
commands get new tags, old tags are never reused. Never pickle.

Two ids ride on every command:

* `request_id` — the proposer's waiter token: random per proposal, so the node that
  proposed resolves exactly its own waiter when the entry applies;
* `client_id` — set only when the client gave an idempotency key (`?request_id=`):
  the state machine remembers the first outcome of a client id together with a digest
  of the command, answers a retry of the same command with that outcome, and refuses
  a different command under the same id (RequestIdConflict).

Enum numbering follows etcd's rpc.proto so the faces can pass etcd's numeric enums
straight through.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from enum import IntEnum

import msgpack

from raftkv.errors import Invalid, InvalidArgument

MAX_INT64 = (1 << 63) - 1
MAX_CLIENT_ID = 128  # bytes; client ids are stored in the dedup table


class CompareTarget(IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


class CompareResult(IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class SortOrder(IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class AlarmType(IntEnum):
    """etcd's AlarmType numbering."""

    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


class Tag(IntEnum):
    """Wire tags. Append only; never renumber."""

    NOOP = 0
    PUT = 1
    DELETE_RANGE = 2
    TXN = 3
    RANGE = 4
    COMPACT = 5
    LEASE_GRANT = 6
    LEASE_REVOKE = 7
    LEASE_CHECKPOINT = 8
    ALARM = 9


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix` (etcd's rule).

    Strip trailing 0xff bytes and increment the last remaining byte; a prefix of only
    0xff bytes (or the empty prefix) has no upper bound, which etcd spells b"\\x00".
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


class _Cmd:
    """Shared encoding for commands: subclasses define `_fields()` and `TAG`."""

    __slots__ = ()
    TAG: Tag

    def _fields(self) -> list[object]:
        raise NotImplementedError

    def _pack(self) -> list[object]:
        return [self.TAG, self.request_id, self.client_id, *self._fields()]  # type: ignore[attr-defined]

    def encode(self) -> bytes:
        return _packb(self._pack())

    def with_ids(self, request_id: bytes | None, client_id: bytes | None) -> Command:
        """This command with other ids (dataclasses.replace, without its introspection:
        every proposal goes through here)."""
        new = object.__new__(type(self))
        for name in type(self).__slots__:  # type: ignore[attr-defined]
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "request_id", request_id)
        object.__setattr__(new, "client_id", client_id)
        return new  # type: ignore[return-value]

    def digest(self) -> bytes:
        """What a client id is bound to: the command without its ids (and without
        proposer-stamped budgets, which may differ between members)."""
        plain = dataclasses.replace(self, request_id=None, client_id=None)  # type: ignore[type-var]
        if isinstance(plain, Txn):
            plain = dataclasses.replace(plain, max_range_keys=0, max_range_bytes=0)
        return hashlib.blake2b(plain.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Compare:
    """A txn guard over `key` (or every key in [key, range_end)).

    `operand` is bytes for VALUE and an int for the other targets.
    """

    key: bytes
    target: CompareTarget
    result: CompareResult
    operand: int | bytes
    range_end: bytes = b""

    def _pack(self) -> list[object]:
        return [self.key, int(self.target), int(self.result), self.operand, self.range_end]


@dataclass(frozen=True, slots=True)
class Range(_Cmd):
    """A read. Standalone reads bypass Raft; inside a Txn it reads the txn's view."""

    TAG = Tag.RANGE
    key: bytes
    range_end: bytes = b""
    revision: int = 0
    limit: int = 0
    keys_only: bool = False
    count_only: bool = False
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [
            self.key,
            self.range_end,
            self.revision,
            self.limit,
            self.keys_only,
            self.count_only,
            int(self.sort_order),
            int(self.sort_target),
            self.min_mod_revision,
            self.max_mod_revision,
            self.min_create_revision,
            self.max_create_revision,
        ]


@dataclass(frozen=True, slots=True)
class Put(_Cmd):
    TAG = Tag.PUT
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False  # keep the current value (key must exist)
    ignore_lease: bool = False  # keep the current lease (key must exist)
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [
            self.key,
            self.value,
            self.lease,
            self.prev_kv,
            self.ignore_value,
            self.ignore_lease,
        ]


@dataclass(frozen=True, slots=True)
class DeleteRange(_Cmd):
    TAG = Tag.DELETE_RANGE
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [self.key, self.range_end, self.prev_kv]


@dataclass(frozen=True, slots=True)
class Txn(_Cmd):
    """If every compare holds, run `success` in order, else `failure`; one revision.

    `max_range_keys` / `max_range_bytes` bound what the txn's reads (ranges and
    compares over key ranges) may scan and return during apply; the proposer stamps
    its limits into the command so every member applies the same bound (0 = none).
    """

    TAG = Tag.TXN
    compares: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()
    request_id: bytes | None = None
    client_id: bytes | None = None
    max_range_keys: int = 0
    max_range_bytes: int = 0

    def _fields(self) -> list[object]:
        return [
            [c._pack() for c in self.compares],
            [op._pack() for op in self.success],
            [op._pack() for op in self.failure],
            self.max_range_keys,
            self.max_range_bytes,
        ]


TxnOp = Range | Put | DeleteRange | Txn


@dataclass(frozen=True, slots=True)
class Compact(_Cmd):
    """Drop history below `revision` (reads at `revision` itself still work)."""

    TAG = Tag.COMPACT
    revision: int
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [self.revision]


@dataclass(frozen=True, slots=True)
class LeaseGrant(_Cmd):
    """Create a lease. `id=0` lets the store derive one from the Raft index.

    The derived id is a pure function of the index and the current lease set, so every
    replica picks the same one; nothing here is random.
    """

    TAG = Tag.LEASE_GRANT
    ttl: int
    id: int = 0
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [self.ttl, self.id]


@dataclass(frozen=True, slots=True)
class LeaseRevoke(_Cmd):
    """Delete the lease and, in one revision, every key attached to it."""

    TAG = Tag.LEASE_REVOKE
    id: int
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [self.id]


@dataclass(frozen=True, slots=True)
class LeaseCheckpoint(_Cmd):
    """Persist leases' remaining TTLs so a new leader does not restart them at full TTL.

    Pairs of (lease id, remaining seconds); unknown ids are ignored because the lease
    may have been revoked between the leader deciding to checkpoint and the apply.
    """

    TAG = Tag.LEASE_CHECKPOINT
    checkpoints: tuple[tuple[int, int], ...]
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [[list(c) for c in self.checkpoints]]


@dataclass(frozen=True, slots=True)
class Alarm(_Cmd):
    """Raise (`active`) or clear an alarm for a member, as etcd's AlarmRequest does.

    Alarms are replicated state: NOSPACE, once raised, refuses every growing write on
    every member until an operator disarms it (after compacting and defragmenting).
    """

    TAG = Tag.ALARM
    member_id: int
    alarm: AlarmType
    active: bool
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return [self.member_id, int(self.alarm), self.active]


@dataclass(frozen=True, slots=True)
class Noop(_Cmd):
    """Advances the applied index only (a barrier, or a request-id probe)."""

    TAG = Tag.NOOP
    request_id: bytes | None = None
    client_id: bytes | None = None

    def _fields(self) -> list[object]:
        return []


Command = (
    Put
    | DeleteRange
    | Txn
    | Range
    | Compact
    | LeaseGrant
    | LeaseRevoke
    | LeaseCheckpoint
    | Alarm
    | Noop
)


def _packb(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def encode(cmd: Command) -> bytes:
    return cmd.encode()


def _malformed(detail: str) -> InvalidArgument:
    return InvalidArgument(Invalid.MALFORMED_COMMAND, f"raftkv: malformed command: {detail}")


def decode(data: bytes) -> Command:
    """Bytes of a Raft entry back to a command; InvalidArgument if malformed.

    Malformed input is a deterministic error, not a crash: every replica decodes the
    same bytes the same way, so they all answer the same error. Decoding is bounded:
    msgpack refuses containers deeper than its own limit, and txn nesting is walked
    iteratively by depth (see _DEPTH).
    """
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
        return _from_raw(raw, 0)
    except InvalidArgument:
        raise
    except Exception as e:  # msgpack errors, wrong arity, wrong types, recursion
        raise _malformed(type(e).__name__) from None


_DEPTH = 256  # txn nesting a decoded entry may have (proposers allow far less)


def _ids(raw: list) -> tuple[bytes | None, bytes | None]:  # type: ignore[type-arg]
    rid, cid = raw[1], raw[2]
    for v in (rid, cid):
        if v is not None and not isinstance(v, bytes):
            raise _malformed("ids must be bytes")
    return rid, cid


def _from_raw(raw: list, depth: int) -> Command:  # type: ignore[type-arg]
    if not isinstance(raw, list) or len(raw) < 3:
        raise _malformed("not a command")
    tag = raw[0]
    rid, cid = _ids(raw)
    a = raw[3:]
    if tag == Tag.PUT:
        key, value, lease, prev_kv, ignore_value, ignore_lease = a
        return Put(
            _b(key), _b(value), _i(lease), _t(prev_kv), _t(ignore_value), _t(ignore_lease), rid, cid
        )
    if tag == Tag.DELETE_RANGE:
        key, range_end, prev_kv = a
        return DeleteRange(_b(key), _b(range_end), _t(prev_kv), rid, cid)
    if tag == Tag.TXN:
        if depth > _DEPTH:
            raise _malformed("txn nested too deep")
        compares, success, failure, max_keys, max_bytes = a
        return Txn(
            tuple(_compare(c) for c in _list(compares)),
            tuple(_op(o, depth + 1) for o in _list(success)),
            tuple(_op(o, depth + 1) for o in _list(failure)),
            rid,
            cid,
            _i(max_keys),
            _i(max_bytes),
        )
    if tag == Tag.RANGE:
        return _range(a, rid, cid)
    if tag == Tag.COMPACT:
        (revision,) = a
        return Compact(_i(revision), rid, cid)
    if tag == Tag.LEASE_GRANT:
        ttl, lease_id = a
        return LeaseGrant(_i(ttl), _i(lease_id), rid, cid)
    if tag == Tag.LEASE_REVOKE:
        (lease_id,) = a
        return LeaseRevoke(_i(lease_id), rid, cid)
    if tag == Tag.LEASE_CHECKPOINT:
        (cps,) = a
        return LeaseCheckpoint(tuple((_i(i), _i(r)) for i, r in _list(cps)), rid, cid)
    if tag == Tag.ALARM:
        member, alarm, active = a
        return Alarm(_i(member), AlarmType(_i(alarm)), _t(active), rid, cid)
    if tag == Tag.NOOP:
        if a:
            raise _malformed("noop takes no fields")
        return Noop(rid, cid)
    raise _malformed(f"unknown tag {tag!r}")


def _range(a: list, rid: bytes | None, cid: bytes | None) -> Range:  # type: ignore[type-arg]
    (key, range_end, revision, limit, keys_only, count_only, so, st, mnm, mxm, mnc, mxc) = a
    return Range(
        _b(key),
        _b(range_end),
        _i(revision),
        _i(limit),
        _t(keys_only),
        _t(count_only),
        SortOrder(_i(so)),
        SortTarget(_i(st)),
        _i(mnm),
        _i(mxm),
        _i(mnc),
        _i(mxc),
        rid,
        cid,
    )


def _op(raw: list, depth: int) -> TxnOp:  # type: ignore[type-arg]
    cmd = _from_raw(raw, depth)
    if not isinstance(cmd, Range | Put | DeleteRange | Txn):
        raise _malformed(f"{type(cmd).__name__} cannot be a txn op")
    return cmd


def _compare(raw: list) -> Compare:  # type: ignore[type-arg]
    key, target, result, operand, range_end = _list(raw)
    t = CompareTarget(_i(target))
    operand = _b(operand) if t == CompareTarget.VALUE else _i(operand)
    return Compare(_b(key), t, CompareResult(_i(result)), operand, _b(range_end))


def _list(v: object) -> list:  # type: ignore[type-arg]
    if not isinstance(v, list):
        raise _malformed(f"expected a list, got {type(v).__name__}")
    return v


def _b(v: object) -> bytes:
    if not isinstance(v, bytes):
        raise _malformed(f"expected bytes, got {type(v).__name__}")
    return v


def _i(v: object) -> int:
    if type(v) is not int:
        raise _malformed(f"expected int, got {type(v).__name__}")
    return v


def _t(v: object) -> bool:
    if type(v) is not bool:
        raise _malformed(f"expected bool, got {type(v).__name__}")
    return v


from raftkv.storage.validate import (  # noqa: E402 - re-exported: validation of commands
    has_put,
    txn_ops_depth,
    validate,
)

__all__ = ["has_put", "txn_ops_depth", "validate"]
