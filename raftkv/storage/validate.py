"""Validating commands: the rules etcd checks before Raft, applied before proposing
and again at apply time (so an entry that slipped past a face, or came from another
proposer, gets the same deterministic answer on every replica).
"""

from __future__ import annotations

from collections.abc import Sequence

from raftkv.errors import DuplicateKey, Invalid, InvalidArgument
from raftkv.storage.commands import (
    _DEPTH,
    MAX_CLIENT_ID,
    MAX_INT64,
    Command,
    Compact,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Txn,
    TxnOp,
)


def validate(cmd: Command, max_key_size: int) -> None:
    """Raise InvalidArgument / DuplicateKey for a request etcd would refuse."""
    if cmd.client_id is not None and not 1 <= len(cmd.client_id) <= MAX_CLIENT_ID:
        raise InvalidArgument(Invalid.REQUEST_ID_TOO_LONG)
    _validate(cmd, max_key_size, 0)


def _validate(cmd: Command, max_key_size: int, depth: int) -> None:
    if isinstance(cmd, Put):
        _check_key(cmd.key, max_key_size)
        if cmd.ignore_value and cmd.value:
            raise InvalidArgument(Invalid.VALUE_PROVIDED)
        if cmd.ignore_lease and cmd.lease:
            raise InvalidArgument(Invalid.LEASE_PROVIDED)
        _check_id(cmd.lease)
    elif isinstance(cmd, DeleteRange | Range):
        _check_key(cmd.key, max_key_size)
        if isinstance(cmd, Range):
            _check_range(cmd)
    elif isinstance(cmd, Txn):
        if depth > _DEPTH:
            raise InvalidArgument(Invalid.NESTING_TOO_DEEP)
        if min(cmd.max_range_keys, cmd.max_range_bytes) < 0:
            raise InvalidArgument(Invalid.NEGATIVE_FIELD)
        for c in cmd.compares:
            _check_key(c.key, max_key_size)
            wants_bytes = c.target == CompareTarget.VALUE
            if isinstance(c.operand, bytes) != wants_bytes or isinstance(c.operand, bool):
                raise InvalidArgument(
                    Invalid.BAD_FIELD, "raftkv: compare operand must be bytes for VALUE, else int"
                )
        for op in cmd.success:
            _validate(op, max_key_size, depth + 1)
        for op in cmd.failure:
            _validate(op, max_key_size, depth + 1)
        _check_intervals(cmd.success)
        _check_intervals(cmd.failure)
    elif isinstance(cmd, LeaseGrant | LeaseRevoke):
        _check_id(cmd.id)
        if isinstance(cmd, LeaseGrant) and cmd.ttl < 0:
            raise InvalidArgument(Invalid.NEGATIVE_TTL)
    elif isinstance(cmd, Compact):
        if cmd.revision < 0:
            raise InvalidArgument(Invalid.NEGATIVE_FIELD)


def _check_key(key: bytes, max_key_size: int) -> None:
    if not key:
        raise InvalidArgument(Invalid.EMPTY_KEY)
    if len(key) > max_key_size:
        raise InvalidArgument(
            Invalid.KEY_TOO_LARGE, f"raftkv: key is too large ({len(key)} > {max_key_size} bytes)"
        )


def _check_id(v: int) -> None:
    if not 0 <= v <= MAX_INT64:
        raise InvalidArgument(Invalid.LEASE_ID_RANGE)


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
        raise InvalidArgument(Invalid.NEGATIVE_FIELD)


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
                raise DuplicateKey()
            puts.add(k)
        for k in puts_else:
            if (k in puts and k not in puts_then) or any(d.contains(k) for d in dels):
                raise DuplicateKey()
            puts.add(k)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if not isinstance(op, Put):
            continue
        if op.key in puts or any(d.contains(op.key) for d in dels):
            raise DuplicateKey()
        puts.add(op.key)
    return puts, dels


def has_put(t: Txn) -> bool:
    """Whether any branch of the txn (at any depth) can write a new value: such a txn
    is refused under the NOSPACE alarm, as etcd refuses it."""
    for op in (*t.success, *t.failure):
        if isinstance(op, Put) or (isinstance(op, Txn) and has_put(op)):
            return True
    return False


def txn_ops_depth(t: Txn, max_ops: int) -> None:
    """etcd's checkTxnRequest: the longest of compare/success/failure must fit in
    `max_ops`, and nested txns get what is left, which also bounds the nesting."""
    stack = [(t, max_ops)]
    while stack:
        txn, budget = stack.pop()
        n = max(len(txn.compares), len(txn.success), len(txn.failure))
        if n > budget:
            raise InvalidArgument(Invalid.TOO_MANY_OPS)
        for op in (*txn.success, *txn.failure):
            if isinstance(op, Txn):
                stack.append((op, budget - n))
