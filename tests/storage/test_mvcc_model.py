"""The LMDB state machine against a plain in-memory model of etcd's semantics.

The model keeps a full copy of the key space at every revision and the list of all
events; it knows nothing about LMDB, history records or indexes. Commands are queued
and applied in batches of varying size, so several commands share one write
transaction, as they do in the node. After every flush the model and the store must
agree on every read: current and historical ranges, versions, create/mod revisions,
leases and attached keys, and the event history with prev_kv.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftkv.storage.commands import (
    Command,
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
    prefix_end,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.errors import (
    DuplicateKeyError,
    FutureRevisionError,
    LeaseExistsError,
    LeaseNotFoundError,
    MvccError,
    RevisionCompactedError,
)
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import (
    CompactResponse,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    PutResponse,
    RangeResponse,
    Response,
    TxnResponse,
)

KEYS = [b"a", b"ab", b"b", b"c", b"c/x", b"c/y", b"d"]
LEASE_IDS = [1, 2, 3]
ALL = (b"\x00", b"\x00")

keys = st.sampled_from(KEYS)
values = st.sampled_from([b"", b"0", b"1", b"v", b"zz"])
leases = st.sampled_from([0, 0, 0, *LEASE_IDS])


@st.composite
def spans(draw: st.DrawFn) -> tuple[bytes, bytes]:
    key = draw(keys)
    kind = draw(st.integers(0, 3))
    end = [b"", prefix_end(key), b"\x00", draw(keys)][kind]
    return key, end


def in_span(k: bytes, key: bytes, end: bytes) -> bool:
    if not end:
        return k == key
    if end == b"\x00":
        return k >= key
    return key <= k < end


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    key, end = draw(spans()) if draw(st.booleans()) else (draw(keys), b"")
    target = draw(st.sampled_from(CompareTarget))
    result = draw(st.sampled_from(CompareResult))
    operand = draw(values) if target == CompareTarget.VALUE else draw(st.integers(0, 12))
    return Compare(key, target, result, operand, end)


@st.composite
def txn_ops(draw: st.DrawFn) -> Put | DeleteRange | Range:
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return Put(draw(keys), draw(values), draw(leases))
    key, end = draw(spans())
    return DeleteRange(key, end) if kind == 1 else Range(key, end)


@dataclass
class Expected:
    revision: int
    response: Response | None = None
    error: MvccError | None = None
    events: list[Event] = field(default_factory=list)
    duplicate: bool = False


class Model:
    def __init__(self) -> None:
        self.rev = 1
        self.compact = 0
        self.states: dict[int, dict[bytes, KeyValue]] = {1: {}}
        self.events: list[Event] = []
        self.leases: dict[int, int] = {}  # id -> ttl
        self.rids: dict[bytes, Expected] = {}

    @property
    def state(self) -> dict[bytes, KeyValue]:
        return self.states[self.rev]

    def select(self, state: dict[bytes, KeyValue], key: bytes, end: bytes) -> list[KeyValue]:
        return [state[k] for k in sorted(state) if in_span(k, key, end)]

    # --- writes: each returns what the store must answer ---------------------------
    def _write(self) -> _Write:
        return _Write(self)

    def put(self, cmd: Put) -> Expected:
        if cmd.lease and cmd.lease not in self.leases:
            return Expected(self.rev, error=LeaseNotFoundError())
        w = self._write()
        prev = w.put(cmd.key, cmd.value, cmd.lease)
        w.commit()
        return Expected(self.rev, PutResponse(self.rev, prev if cmd.prev_kv else None), None, w.ev)

    def delete(self, cmd: DeleteRange) -> Expected:
        w = self._write()
        prevs = w.delete(cmd.key, cmd.range_end)
        w.commit()
        resp = DeleteRangeResponse(self.rev, len(prevs), prevs if cmd.prev_kv else [])
        return Expected(self.rev, resp, None, w.ev)

    def txn(self, cmd: Txn) -> Expected:
        if self._duplicates(cmd.success) or self._duplicates(cmd.failure):
            return Expected(self.rev, error=DuplicateKeyError())
        ok = all(self._compare(c) for c in cmd.compares)
        ops = cmd.success if ok else cmd.failure
        if any(isinstance(op, Put) and op.lease and op.lease not in self.leases for op in ops):
            return Expected(self.rev, error=LeaseNotFoundError())
        w = self._write()
        responses: list[Response] = []
        for op in ops:
            if isinstance(op, Range):
                kvs = self.select(w.work, op.key, op.range_end)
                responses.append(RangeResponse(w.revision(), kvs, len(kvs), False))
            elif isinstance(op, Put):
                w.put(op.key, op.value, op.lease)
                responses.append(PutResponse(w.revision(), None))
            else:
                n = len(w.delete(op.key, op.range_end))
                responses.append(DeleteRangeResponse(w.revision(), n, []))
        w.commit()
        return Expected(self.rev, TxnResponse(self.rev, ok, responses), None, w.ev)

    def _duplicates(self, ops: tuple) -> bool:  # type: ignore[type-arg]
        puts = [op.key for op in ops if isinstance(op, Put)]
        dels = [(op.key, op.range_end) for op in ops if isinstance(op, DeleteRange)]
        return len(set(puts)) != len(puts) or any(
            in_span(k, key, end) for k in puts for key, end in dels
        )

    def _compare(self, c: Compare) -> bool:
        kvs = self.select(self.state, c.key, c.range_end)
        if not kvs:
            if c.target == CompareTarget.VALUE:
                return False
            kvs = [KeyValue(b"", 0, 0, 0, b"", 0)]
        field_of = {
            CompareTarget.VERSION: lambda kv: kv.version,
            CompareTarget.CREATE: lambda kv: kv.create_revision,
            CompareTarget.MOD: lambda kv: kv.mod_revision,
            CompareTarget.VALUE: lambda kv: kv.value,
            CompareTarget.LEASE: lambda kv: kv.lease,
        }[c.target]
        check = {
            CompareResult.EQUAL: lambda a, b: a == b,
            CompareResult.NOT_EQUAL: lambda a, b: a != b,
            CompareResult.GREATER: lambda a, b: a > b,
            CompareResult.LESS: lambda a, b: a < b,
        }[c.result]
        return all(check(field_of(kv), c.operand) for kv in kvs)

    def compact_to(self, cmd: Compact) -> Expected:
        if cmd.revision <= self.compact:
            return Expected(self.rev, error=RevisionCompactedError())
        if cmd.revision > self.rev:
            return Expected(self.rev, error=FutureRevisionError())
        self.compact = cmd.revision
        return Expected(self.rev, CompactResponse(self.rev))

    def grant(self, cmd: LeaseGrant) -> Expected:
        if cmd.id in self.leases:
            return Expected(self.rev, error=LeaseExistsError())
        self.leases[cmd.id] = cmd.ttl
        return Expected(self.rev, LeaseGrantResponse(self.rev, cmd.id, cmd.ttl))

    def revoke(self, cmd: LeaseRevoke) -> Expected:
        if cmd.id not in self.leases:
            return Expected(self.rev, error=LeaseNotFoundError())
        del self.leases[cmd.id]
        w = self._write()
        for k in sorted(k for k, kv in self.state.items() if kv.lease == cmd.id):
            w.delete(k, b"")
        w.commit()
        return Expected(self.rev, LeaseRevokeResponse(self.rev), None, w.ev)


class _Write:
    """One write transaction of the model: all changes share the next revision."""

    def __init__(self, m: Model) -> None:
        self.m = m
        self.main = m.rev + 1
        self.work = dict(m.state)
        self.ev: list[Event] = []

    def revision(self) -> int:
        return self.main if self.ev else self.m.rev

    def put(self, key: bytes, value: bytes, lease: int) -> KeyValue | None:
        prev = self.work.get(key)
        create = prev.create_revision if prev else self.main
        version = prev.version + 1 if prev else 1
        kv = KeyValue(key, create, self.main, version, value, lease)
        self.work[key] = kv
        self.ev.append(Event(EventType.PUT, kv, prev))
        return prev

    def delete(self, key: bytes, end: bytes) -> list[KeyValue]:
        prevs = self.m.select(self.work, key, end)
        for prev in prevs:
            del self.work[prev.key]
            self.ev.append(Event(EventType.DELETE, KeyValue(prev.key, 0, self.main, 0), prev))
        return prevs

    def commit(self) -> None:
        if self.ev:
            self.m.rev = self.main
            self.m.states[self.main] = self.work
            self.m.events.extend(self.ev)


class StoreVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mvcc-model-"))
        self.env = open_env(self.dir, map_size=64 * MiB)
        self.store = MvccStore(self.env, quota_bytes=16 * MiB)
        self.model = Model()
        self.index = 0
        self.pending: list[tuple[Command, Expected]] = []

    def teardown(self) -> None:
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def queue(self, cmd: Command, expected: Expected) -> None:
        if cmd.request_id is not None:
            seen = self.model.rids.get(cmd.request_id)
            if seen is not None:
                expected = Expected(seen.revision, seen.response, seen.error, [], True)
            else:
                self.model.rids[cmd.request_id] = expected
        self.pending.append((cmd, expected))

    # --- commands ----------------------------------------------------------------------
    @rule(key=keys, value=values, lease=leases, prev=st.booleans(), rid=st.none() | keys)
    def put(self, key: bytes, value: bytes, lease: int, prev: bool, rid: bytes | None) -> None:
        cmd = Put(key, value, lease, prev_kv=prev, request_id=rid)
        if rid is not None and rid in self.model.rids:
            self.queue(cmd, Expected(0))  # answered from the dedup table; model unchanged
        else:
            self.queue(cmd, self.model.put(cmd))

    @rule(span=spans(), prev=st.booleans())
    def delete(self, span: tuple[bytes, bytes], prev: bool) -> None:
        cmd = DeleteRange(*span, prev_kv=prev)
        self.queue(cmd, self.model.delete(cmd))

    @rule(
        cmps=st.lists(compares(), max_size=2),
        then=st.lists(txn_ops(), max_size=3),
        other=st.lists(txn_ops(), max_size=3),
    )
    def txn(self, cmps: list[Compare], then: list, other: list) -> None:  # type: ignore[type-arg]
        cmd = Txn(tuple(cmps), tuple(then), tuple(other))
        self.queue(cmd, self.model.txn(cmd))

    @rule(back=st.integers(-1, 3))
    def compact(self, back: int) -> None:
        cmd = Compact(self.model.rev - back)
        self.queue(cmd, self.model.compact_to(cmd))

    @rule(lease_id=st.sampled_from(LEASE_IDS), ttl=st.integers(1, 100))
    def grant(self, lease_id: int, ttl: int) -> None:
        cmd = LeaseGrant(ttl, lease_id)
        self.queue(cmd, self.model.grant(cmd))

    @rule(lease_id=st.sampled_from(LEASE_IDS))
    def revoke(self, lease_id: int) -> None:
        cmd = LeaseRevoke(lease_id)
        self.queue(cmd, self.model.revoke(cmd))

    @rule()
    def flush(self) -> None:
        if not self.pending:
            return
        entries = []
        for cmd, _ in self.pending:
            self.index += 1
            entries.append((self.index, cmd.encode()))
        results = self.store.apply(entries)
        for (cmd, exp), got in zip(self.pending, results, strict=True):
            assert got.duplicate == exp.duplicate, cmd
            assert (got.revision, got.response, got.error) == (
                exp.revision,
                exp.response,
                exp.error,
            ), cmd
            assert got.events == exp.events, cmd
        self.pending.clear()

    @rule()
    def restart(self) -> None:
        self.flush()
        self.env.close()
        self.env = open_env(self.dir, map_size=64 * MiB)
        self.store = MvccStore(self.env, quota_bytes=16 * MiB)

    # --- reads -------------------------------------------------------------------------
    @precondition(lambda self: not self.pending)
    @rule(data=st.data())
    def read_history(self, data: st.DataObject) -> None:
        m = self.model
        rev = data.draw(st.integers(1, m.rev + 1))
        span = data.draw(spans())
        if rev > m.rev:
            self._raises(FutureRevisionError, self.store.range, *span, revision=rev)
        elif rev < m.compact:
            self._raises(RevisionCompactedError, self.store.range, *span, revision=rev)
        else:
            kvs = m.select(m.states[rev], *span)
            assert self.store.range(*span, revision=rev) == RangeResponse(m.rev, kvs, len(kvs))

    @precondition(lambda self: not self.pending)
    @rule(
        span=spans(),
        limit=st.integers(0, 3),
        order=st.sampled_from(SortOrder),
        sort_by=st.sampled_from(SortTarget),
        keys_only=st.booleans(),
    )
    def read_range(
        self,
        span: tuple[bytes, bytes],
        limit: int,
        order: SortOrder,
        sort_by: SortTarget,
        keys_only: bool,
    ) -> None:
        kvs = self.model.select(self.model.state, *span)
        count = len(kvs)
        if order == SortOrder.NONE and sort_by != SortTarget.KEY:
            order = SortOrder.ASCEND
        if order != SortOrder.NONE:
            attr = ["key", "version", "create_revision", "mod_revision", "value"][sort_by]
            kvs.sort(key=lambda kv: getattr(kv, attr), reverse=order == SortOrder.DESCEND)
        more = 0 < limit < len(kvs)
        if limit:
            kvs = kvs[:limit]
        if keys_only:
            kvs = [kv._replace(value=b"") for kv in kvs]
        got = self.store.range(
            *span,
            limit=limit,
            sort_order=order,
            sort_target=sort_by,
            keys_only=keys_only,
        )
        assert got == RangeResponse(self.model.rev, kvs, count, more)

    @precondition(lambda self: not self.pending)
    @rule(data=st.data())
    def read_events(self, data: st.DataObject) -> None:
        m = self.model
        low = max(1, m.compact)
        start = data.draw(st.just(low) | st.integers(max(1, m.compact - 1), m.rev + 1))
        span = data.draw(spans())
        if start < m.compact:
            self._raises(RevisionCompactedError, self.store.events, start, *span)
            return
        want = [e for e in m.events if e.revision >= start and in_span(e.kv.key, *span)]
        # A change at exactly the compact revision lost its predecessor to compaction;
        # etcd, reading prev_kv at revision - 1, omits it there as well.
        want = [e._replace(prev_kv=None) if e.revision == m.compact else e for e in want]
        assert self.store.events(start, *span, prev_kv=True) == (want, m.rev)
        bare = [Event(e.type, e.kv, None) for e in want]
        assert self.store.events(start, *span).events == bare

    @staticmethod
    def _raises(exc: type[Exception], fn, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        try:
            fn(*args, **kwargs)
        except exc:
            return
        raise AssertionError(f"{fn.__name__} did not raise {exc.__name__}")

    @invariant()
    def same_current_state(self) -> None:
        if self.pending:
            return
        m, s = self.model, self.store
        assert (s.current_revision(), s.compact_revision()) == (m.rev, m.compact)
        assert s.applied_index() == self.index
        assert s.range(*ALL).kvs == m.select(m.state, *ALL)
        assert s.lease_list() == sorted(m.leases)
        for lease_id, ttl in m.leases.items():
            attached = tuple(sorted(k for k, kv in m.state.items() if kv.lease == lease_id))
            info = s.lease_get(lease_id)
            assert info is not None and (info.ttl, info.keys) == (ttl, attached)


StoreVsModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStoreVsModel = StoreVsModel.TestCase
