"""Commands proposed through Raft and applied by the MVCC state machine.

A command is a small frozen dataclass. `encode()` turns it into the bytes that go in
a Raft entry (msgpack: `[tag, request_id, *fields]`, positional so entries stay
small), and `decode()` turns those bytes back. The encoding is part of the replicated
log, so it must never change meaning: new fields go at the end with defaults, new
commands get new tags, and old tags are never reused. Never pickle.

`request_id` is optional; when set, the state machine remembers the command's result
and answers a re-proposal of the same id with that first result (exactly-once for
proposals retried across leader changes). Inside a `Txn` the ops' own request ids
are ignored.

Enum numbering follows etcd's rpc.proto so the HTTP gateway can pass etcd's numeric
enums straight through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import msgpack

from raftkv.storage.errors import (
    MSG_EMPTY_KEY,
    MSG_LEASE_PROVIDED,
    MSG_VALUE_PROVIDED,
    BadRequestError,
    DuplicateKeyError,
)

MAX_INT64 = (1 << 63) - 1


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
class Range:
    """A read. Standalone reads bypass Raft; inside a Txn it reads the txn's view."""

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

    def _pack(self) -> list[object]:
        return [
            Tag.RANGE,
            self.request_id,
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

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class Put:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False  # keep the current value (key must exist)
    ignore_lease: bool = False  # keep the current lease (key must exist)
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [
            Tag.PUT,
            self.request_id,
            self.key,
            self.value,
            self.lease,
            self.prev_kv,
            self.ignore_value,
            self.ignore_lease,
        ]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class DeleteRange:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.DELETE_RANGE, self.request_id, self.key, self.range_end, self.prev_kv]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class Txn:
    """If every compare holds, run `success` in order, else `failure`; one revision."""

    compares: tuple[Compare, ...] = ()
    success: tuple[TxnOp, ...] = ()
    failure: tuple[TxnOp, ...] = ()
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [
            Tag.TXN,
            self.request_id,
            [c._pack() for c in self.compares],
            [op._pack() for op in self.success],
            [op._pack() for op in self.failure],
        ]

    def encode(self) -> bytes:
        return _packb(self._pack())


TxnOp = Range | Put | DeleteRange | Txn


@dataclass(frozen=True, slots=True)
class Compact:
    """Drop history below `revision` (reads at `revision` itself still work)."""

    revision: int
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.COMPACT, self.request_id, self.revision]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """Create a lease. `id=0` lets the store derive one from the Raft index.

    The derived id is a pure function of the index and the current lease set, so every
    replica picks the same one; nothing here is random.
    """

    ttl: int
    id: int = 0
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.LEASE_GRANT, self.request_id, self.ttl, self.id]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class LeaseRevoke:
    """Delete the lease and, in one revision, every key attached to it."""

    id: int
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.LEASE_REVOKE, self.request_id, self.id]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class LeaseCheckpoint:
    """Persist leases' remaining TTLs so a new leader does not restart them at full TTL.

    Pairs of (lease id, remaining seconds); unknown ids are ignored because the lease
    may have been revoked between the leader deciding to checkpoint and the apply.
    """

    checkpoints: tuple[tuple[int, int], ...]
    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.LEASE_CHECKPOINT, self.request_id, [list(c) for c in self.checkpoints]]

    def encode(self) -> bytes:
        return _packb(self._pack())


@dataclass(frozen=True, slots=True)
class Noop:
    """Advances the applied index only (a barrier, or a request-id probe)."""

    request_id: bytes | None = None

    def _pack(self) -> list[object]:
        return [Tag.NOOP, self.request_id]

    def encode(self) -> bytes:
        return _packb(self._pack())


Command = (
    Put | DeleteRange | Txn | Range | Compact | LeaseGrant | LeaseRevoke | LeaseCheckpoint | Noop
)


def _packb(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def encode(cmd: Command) -> bytes:
    return cmd.encode()


def decode(data: bytes) -> Command:
    """Bytes of a Raft entry back to a command; BadRequestError if malformed.

    Malformed input is a deterministic error, not a crash: every replica decodes the
    same bytes the same way, so they all answer the same error.
    """
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
        return _from_raw(raw)
    except BadRequestError:
        raise
    except Exception as e:  # msgpack errors, wrong arity, wrong types
        raise BadRequestError(f"raftkv: malformed command: {e}") from None


def _from_raw(raw: list) -> Command:  # type: ignore[type-arg]
    tag = raw[0]
    rid = raw[1]
    if rid is not None and not isinstance(rid, bytes):
        raise BadRequestError("raftkv: malformed command: request id must be bytes")
    a = raw[2:]
    if tag == Tag.PUT:
        key, value, lease, prev_kv, ignore_value, ignore_lease = a
        return Put(
            _b(key),
            _b(value),
            _i(lease),
            bool(prev_kv),
            bool(ignore_value),
            bool(ignore_lease),
            rid,
        )
    if tag == Tag.DELETE_RANGE:
        key, range_end, prev_kv = a
        return DeleteRange(_b(key), _b(range_end), bool(prev_kv), rid)
    if tag == Tag.TXN:
        compares, success, failure = a
        return Txn(
            tuple(_compare(c) for c in compares),
            tuple(_op(o) for o in success),
            tuple(_op(o) for o in failure),
            rid,
        )
    if tag == Tag.RANGE:
        return _range(a, rid)
    if tag == Tag.COMPACT:
        (revision,) = a
        return Compact(_i(revision), rid)
    if tag == Tag.LEASE_GRANT:
        ttl, lease_id = a
        return LeaseGrant(_i(ttl), _i(lease_id), rid)
    if tag == Tag.LEASE_REVOKE:
        (lease_id,) = a
        return LeaseRevoke(_i(lease_id), rid)
    if tag == Tag.LEASE_CHECKPOINT:
        (cps,) = a
        return LeaseCheckpoint(tuple((_i(i), _i(r)) for i, r in cps), rid)
    if tag == Tag.NOOP:
        if a:
            raise BadRequestError("raftkv: malformed command: noop takes no fields")
        return Noop(rid)
    raise BadRequestError(f"raftkv: unknown command tag {tag!r}")


def _range(a: list, rid: bytes | None) -> Range:  # type: ignore[type-arg]
    (key, range_end, revision, limit, keys_only, count_only, so, st, mnm, mxm, mnc, mxc) = a
    return Range(
        _b(key),
        _b(range_end),
        _i(revision),
        _i(limit),
        bool(keys_only),
        bool(count_only),
        SortOrder(so),
        SortTarget(st),
        _i(mnm),
        _i(mxm),
        _i(mnc),
        _i(mxc),
        rid,
    )


def _op(raw: list) -> TxnOp:  # type: ignore[type-arg]
    cmd = _from_raw(raw)
    if not isinstance(cmd, Range | Put | DeleteRange | Txn):
        raise BadRequestError(f"raftkv: {type(cmd).__name__} cannot be a txn op")
    return cmd


def _compare(raw: list) -> Compare:  # type: ignore[type-arg]
    key, target, result, operand, range_end = raw
    t = CompareTarget(target)
    if t == CompareTarget.VALUE:
        operand = _b(operand)
    else:
        operand = _i(operand)
    return Compare(_b(key), t, CompareResult(result), operand, _b(range_end))


def _b(v: object) -> bytes:
    if not isinstance(v, bytes):
        raise BadRequestError(f"raftkv: malformed command: expected bytes, got {type(v).__name__}")
    return v


def _i(v: object) -> int:
    if type(v) is not int:
        raise BadRequestError(f"raftkv: malformed command: expected int, got {type(v).__name__}")
    return v


# --- validation ----------------------------------------------------------------------
# etcd validates requests at its gRPC layer; raftkv also validates at apply time so a
# request that slipped past the HTTP layer (or came from an older node) still gets the
# same deterministic answer on every replica. The node may call these before proposing
# to fail fast.


def validate(cmd: Command, max_key_size: int) -> None:
    """Raise BadRequestError / DuplicateKeyError for a request etcd would refuse."""
    if isinstance(cmd, Put):
        _check_key(cmd.key, max_key_size)
        if cmd.ignore_value and cmd.value:
            raise BadRequestError(MSG_VALUE_PROVIDED)
        if cmd.ignore_lease and cmd.lease:
            raise BadRequestError(MSG_LEASE_PROVIDED)
        _check_id(cmd.lease, "lease")
    elif isinstance(cmd, DeleteRange | Range):
        _check_key(cmd.key, max_key_size)
        if isinstance(cmd, Range):
            _check_range(cmd)
    elif isinstance(cmd, Txn):
        for c in cmd.compares:
            _check_key(c.key, max_key_size)
            wants_bytes = c.target == CompareTarget.VALUE
            if isinstance(c.operand, bytes) != wants_bytes or isinstance(c.operand, bool):
                raise BadRequestError("raftkv: compare operand must be bytes for VALUE, else int")
        for op in cmd.success:
            validate(op, max_key_size)
        for op in cmd.failure:
            validate(op, max_key_size)
        _check_intervals(cmd.success)
        _check_intervals(cmd.failure)
    elif isinstance(cmd, LeaseGrant | LeaseRevoke):
        _check_id(cmd.id, "lease")
        if isinstance(cmd, LeaseGrant) and cmd.ttl < 0:
            raise BadRequestError("raftkv: lease TTL must not be negative")


def _check_key(key: bytes, max_key_size: int) -> None:
    if not key:
        raise BadRequestError(MSG_EMPTY_KEY)
    if len(key) > max_key_size:
        raise BadRequestError(f"raftkv: key is too large ({len(key)} > {max_key_size} bytes)")


def _check_id(v: int, what: str) -> None:
    if not 0 <= v <= MAX_INT64:
        raise BadRequestError(f"raftkv: {what} id out of range")


def _check_range(r: Range) -> None:
    fields = (
        r.revision,
        r.limit,
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    )
    if min(fields) < 0:
        raise BadRequestError("raftkv: negative revision or limit in range request")


class _Span:
    """A half-open key interval; `end=None` means unbounded above."""

    __slots__ = ("start", "end")

    def __init__(self, key: bytes, range_end: bytes) -> None:
        self.start = key
        if not range_end:
            self.end: bytes | None = key + b"\x00"  # the single key
        elif range_end == b"\x00":
            self.end = None
        else:
            self.end = range_end

    def contains(self, key: bytes) -> bool:
        return self.start <= key and (self.end is None or key < self.end)


def _check_intervals(ops: Sequence[TxnOp]) -> tuple[set[bytes], list[_Span]]:
    """etcd's checkIntervals: within one txn branch no key may be put twice, and no key
    may be both put and deleted (the then/else branches of a nested txn are mutually
    exclusive, so the same key may be put in both)."""
    dels = [_Span(op.key, op.range_end) for op in ops if isinstance(op, DeleteRange)]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, Txn):
            continue
        puts_then, dels_then = _check_intervals(op.success)
        puts_else, dels_else = _check_intervals(op.failure)
        for k in puts_then:
            if k in puts or any(d.contains(k) for d in dels):
                raise DuplicateKeyError()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or any(d.contains(k) for d in dels):
                raise DuplicateKeyError()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if not isinstance(op, Put):
            continue
        if op.key in puts or any(d.contains(op.key) for d in dels):
            raise DuplicateKeyError()
        puts.add(op.key)
    return puts, dels
