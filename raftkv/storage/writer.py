"""Applying commands inside the batch's single LMDB write transaction.

A `Writer` is created per `apply()` call. It carries the counters (revision, logical
space, dedup sequence numbers, applied index) as plain attributes and only hands them
back via `state()`, which the store writes in the same transaction; if the transaction
aborts, the store's committed state is untouched.

Every command checks everything that can fail *before* its first write, so an error
leaves nothing behind and the batch goes on. A Txn works like etcd's applier: compares
(including those of nested txns) are evaluated against the state before the txn,
then the ops of the chosen branches are checked (lease exists, key exists for
ignore_*, read revisions valid), then the quota, and only then does anything run.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb

from raftkv.storage import leases
from raftkv.storage.commands import (
    Command,
    Compact,
    DeleteRange,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseRevoke,
    Noop,
    Put,
    Range,
    Txn,
    decode,
    validate,
)
from raftkv.storage.errors import (
    BadRequestError,
    FutureRevisionError,
    KeyNotFoundError,
    LeaseExistsError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    MvccError,
    NoSpaceError,
    RevisionCompactedError,
)
from raftkv.storage.layout import (
    FLAG_TOMBSTONE,
    LEASE_OVERHEAD,
    LIVE,
    REC,
    REC_SIZE,
    REF_SIZE,
    REV,
    TOMBSTONE,
    U64,
    Dbs,
    State,
    lease_key_cost,
    record_cost,
)
from raftkv.storage.results import (
    ApplyResult,
    CompactResponse,
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    LeaseCheckpointResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
    NoopResponse,
    PutResponse,
    Response,
    TxnResponse,
    decode_outcome,
    encode_outcome,
)
from raftkv.storage.view import View

MAX_REQUEST_ID = 128  # bytes; request ids are LMDB keys in the dedup table


class Writer(View):
    """Applies entries of one batch; see the module docstring for the rules."""

    __slots__ = (
        "applied",
        "begin",
        "sub",
        "events",
        "space",
        "quota",
        "nospace",
        "max_key_size",
        "dedup_capacity",
        "dedup_head",
        "dedup_next",
        "dedup_committed",
        "dedup_added",
        "dedup_evicted",
        "_handlers",
    )

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: Dbs,
        state: State,
        *,
        quota: int,
        nospace: bool,
        max_key_size: int,
        dedup_capacity: int,
        dedup_index: dict[bytes, int],
    ) -> None:
        super().__init__(txn, dbs, state.revision, state.compact_revision)
        self.applied = state.applied_index
        self.begin = state.revision
        self.sub = 0
        self.events: list[Event] = []
        self.space = state.space_used
        self.quota = quota
        self.nospace = nospace
        self.max_key_size = max_key_size
        self.dedup_capacity = dedup_capacity
        self.dedup_head = state.dedup_head
        self.dedup_next = state.dedup_next
        # The store's committed id -> seq map is only read here; this batch's changes
        # are kept aside and merged by the store after the transaction commits.
        self.dedup_committed = dedup_index
        self.dedup_added: dict[bytes, int] = {}
        self.dedup_evicted: set[bytes] = set()
        self._handlers: dict[type, Callable[[Command, int], Response]] = {
            Put: self._put,  # type: ignore[dict-item]
            DeleteRange: self._delete_range,  # type: ignore[dict-item]
            Txn: self._txn,  # type: ignore[dict-item]
            Range: self._range,  # type: ignore[dict-item]
            Compact: self._compact,  # type: ignore[dict-item]
            LeaseGrant: self._lease_grant,  # type: ignore[dict-item]
            LeaseRevoke: self._lease_revoke,  # type: ignore[dict-item]
            LeaseCheckpoint: self._lease_checkpoint,  # type: ignore[dict-item]
            Noop: self._noop,  # type: ignore[dict-item]
        }

    def state(self) -> State:
        return State(
            self.applied,
            self.current,
            self.compact_rev,
            self.space,
            self.dedup_head,
            self.dedup_next,
        )

    # --- one entry ----------------------------------------------------------------------
    def apply_entry(self, index: int, data: bytes) -> ApplyResult:
        self.applied = index
        if not data:
            return ApplyResult(index, self.current)
        try:
            cmd = decode(data)
        except BadRequestError as e:
            return ApplyResult(index, self.current, error=e)
        rid = cmd.request_id or None
        if rid is not None:
            if len(rid) > MAX_REQUEST_ID:
                err = BadRequestError(f"raftkv: request id longer than {MAX_REQUEST_ID} bytes")
                return ApplyResult(index, self.current, error=err, request_id=rid)
            seq = self.dedup_added.get(rid)
            if seq is None and rid not in self.dedup_evicted:
                seq = self.dedup_committed.get(rid)
            if seq is not None:
                hit = self.txn.get(U64.pack(seq), db=self.dbs.dedup)
                revision, response, error = decode_outcome(hit[1 + hit[0] :])
                return ApplyResult(index, revision, response, error, [], rid, duplicate=True)
        self.begin = self.current
        self.sub = 0
        self.events = []
        response: Response | None
        try:
            response = self._handlers[type(cmd)](cmd, index)
            error = None
        except MvccError as e:
            response, error = None, e
        result = ApplyResult(index, self.current, response, error, self.events, rid)
        if rid is not None and self.dedup_capacity > 0 and not isinstance(cmd, Range):
            self._remember(rid, result)
        return result

    def _remember(self, rid: bytes, result: ApplyResult) -> None:
        """Keep the first outcome of a request id; forget the oldest beyond capacity.

        Errors are remembered too: a client told "failed" must never see a delayed
        duplicate of the same proposal succeed later.
        """
        txn = self.txn
        dedup = self.dbs.dedup
        outcome = encode_outcome(result.revision, result.response, result.error)
        seq = self.dedup_next
        txn.put(U64.pack(seq), bytes((len(rid),)) + rid + outcome, db=dedup, append=True)
        self.dedup_added[rid] = seq
        self.dedup_next += 1
        while self.dedup_next - self.dedup_head > self.dedup_capacity:
            old = txn.pop(U64.pack(self.dedup_head), db=dedup)
            if old is not None:
                old_rid = old[1 : 1 + old[0]]
                if self.dedup_added.pop(old_rid, None) is None:
                    self.dedup_evicted.add(old_rid)
            self.dedup_head += 1

    # --- primitive writes ------------------------------------------------------------------
    def _next_ref(self) -> bytes:
        """Revision of the next change of the current command (same main, next sub)."""
        ref = REV.pack(self.begin + 1, self.sub)
        self.sub += 1
        self.current = self.begin + 1
        return ref

    def reserve(self, cost: int) -> None:
        if self.nospace or self.space + cost > self.quota:
            raise NoSpaceError()

    def put_cost(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> int:
        cost = record_cost(REC_SIZE + len(key) + len(value), len(key))
        if lease and (prev is None or prev.lease != lease):
            cost += lease_key_cost(len(key))
        return cost

    def write_put(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> None:
        ref = self._next_ref()
        main = self.current
        if prev is None:
            create, version, old_lease = main, 1, 0
        else:
            create, version, old_lease = prev.create_revision, prev.version + 1, prev.lease
        rec = REC.pack(0, create, version, lease, len(key)) + key + value
        txn = self.txn
        if not txn.put(ref, rec, append=True, db=self.dbs.hist):
            raise RuntimeError(f"history revision {REV.unpack(ref)} is not the newest")
        txn.put(key, ref + LIVE, db=self.dbs.index)
        self.space += record_cost(len(rec), len(key))
        if old_lease != lease:
            if old_lease:
                self._detach(old_lease, key)
            if lease:
                txn.put(U64.pack(lease), key, db=self.dbs.lease_keys)
                self.space += lease_key_cost(len(key))
        kv = KeyValue(key, create, main, version, value, lease)
        self.events.append(Event(EventType.PUT, kv, prev))

    def write_delete(self, prev: KeyValue) -> None:
        key = prev.key
        ref = self._next_ref()
        rec = REC.pack(FLAG_TOMBSTONE, 0, 0, 0, len(key)) + key
        txn = self.txn
        if not txn.put(ref, rec, append=True, db=self.dbs.hist):
            raise RuntimeError(f"history revision {REV.unpack(ref)} is not the newest")
        txn.put(key, ref + TOMBSTONE, db=self.dbs.index)
        self.space += record_cost(len(rec), len(key))
        if prev.lease:
            self._detach(prev.lease, key)
        kv = KeyValue(key, 0, self.current, 0, b"", 0)
        self.events.append(Event(EventType.DELETE, kv, prev))

    def _detach(self, lease_id: int, key: bytes) -> None:
        if self.txn.delete(U64.pack(lease_id), key, db=self.dbs.lease_keys):
            self.space -= lease_key_cost(len(key))

    def lease_exists(self, lease_id: int) -> bool:
        return self.txn.get(leases.lease_key(lease_id), db=self.dbs.lease) is not None

    # --- commands ------------------------------------------------------------------------
    def _put(self, cmd: Put, index: int) -> PutResponse:
        validate(cmd, self.max_key_size)
        prev = self.latest(cmd.key)
        value, lease = self._check_put(cmd, prev)
        self.reserve(self.put_cost(cmd.key, value, lease, prev))
        self.write_put(cmd.key, value, lease, prev)
        return PutResponse(self.current, prev if cmd.prev_kv else None)

    def _check_put(self, cmd: Put, prev: KeyValue | None) -> tuple[bytes, int]:
        """etcd's checkRequestPut; returns the value and lease the put will write."""
        if (cmd.ignore_value or cmd.ignore_lease) and prev is None:
            raise KeyNotFoundError()
        if cmd.lease and not self.lease_exists(cmd.lease):
            raise LeaseNotFoundError()
        value = prev.value if cmd.ignore_value and prev else cmd.value
        lease = prev.lease if cmd.ignore_lease and prev else cmd.lease
        return value, lease

    def _delete_range(self, cmd: DeleteRange, index: int) -> DeleteRangeResponse:
        validate(cmd, self.max_key_size)
        prevs = self._delete(cmd)
        return DeleteRangeResponse(self.current, len(prevs), prevs if cmd.prev_kv else [])

    def _delete(self, cmd: DeleteRange) -> list[KeyValue]:
        prevs = [self.kv(ref) for _k, ref in self.refs(cmd.key, cmd.range_end, self.current)]
        for prev in prevs:
            self.write_delete(prev)
        return prevs

    def _range(self, cmd: Range, index: int) -> Response:
        validate(cmd, self.max_key_size)
        return self.range(cmd)

    def _noop(self, cmd: Noop, index: int) -> NoopResponse:
        return NoopResponse(self.current)

    def _txn(self, cmd: Txn, index: int) -> TxnResponse:
        validate(cmd, self.max_key_size)
        path: list[bool] = []
        self._compare_path(cmd, path)
        cost, _ = self._check_branch(cmd, path, 0)
        if cost:
            self.reserve(cost)
        try:
            resp, _ = self._run_branch(cmd, path, 0)
        except MvccError as e:  # everything that can fail was checked above
            raise RuntimeError(f"txn op failed after its checks passed: {e!r}") from e
        resp.revision = self.current
        return resp

    def _compare_path(self, t: Txn, path: list[bool]) -> None:
        """etcd's compareToPath: outcome of each txn on the chosen branches, pre-order."""
        ok = all(self.compare(c) for c in t.compares)
        path.append(ok)
        for op in t.success if ok else t.failure:
            if isinstance(op, Txn):
                self._compare_path(op, path)

    def _check_branch(self, t: Txn, path: list[bool], pos: int) -> tuple[int, int]:
        """Check the ops that will run; return (space they need, next path position)."""
        ok = path[pos]
        pos += 1
        cost = 0
        for op in t.success if ok else t.failure:
            if isinstance(op, Put):
                prev = self.latest(op.key)
                value, lease = self._check_put(op, prev)
                cost += self.put_cost(op.key, value, lease, prev)
            elif isinstance(op, Range):
                if op.revision > self.current:
                    raise FutureRevisionError()
                if 0 < op.revision < self.compact_rev:
                    raise RevisionCompactedError()
            elif isinstance(op, Txn):
                sub_cost, pos = self._check_branch(op, path, pos)
                cost += sub_cost
        return cost, pos

    def _run_branch(self, t: Txn, path: list[bool], pos: int) -> tuple[TxnResponse, int]:
        ok = path[pos]
        pos += 1
        responses: list[Response] = []
        for op in t.success if ok else t.failure:
            if isinstance(op, Range):
                responses.append(self.range(op))
            elif isinstance(op, Put):
                prev = self.latest(op.key)
                value, lease = self._check_put(op, prev)
                self.write_put(op.key, value, lease, prev)
                responses.append(PutResponse(self.current, prev if op.prev_kv else None))
            elif isinstance(op, DeleteRange):
                prevs = self._delete(op)
                kept = prevs if op.prev_kv else []
                responses.append(DeleteRangeResponse(self.current, len(prevs), kept))
            else:
                nested, pos = self._run_branch(op, path, pos)
                responses.append(nested)  # revision stays 0: etcd leaves nested headers empty
        return TxnResponse(0, ok, responses), pos

    def _compact(self, cmd: Compact, index: int) -> CompactResponse:
        rev = cmd.revision
        if rev <= self.compact_rev:
            raise RevisionCompactedError()
        if rev > self.current:
            raise FutureRevisionError()
        self._compact_history(rev)
        self.compact_rev = rev
        return CompactResponse(self.current)

    def _compact_history(self, rev: int) -> None:
        """Drop every change at or below `rev` that a read at `rev` or later cannot see.

        For each key the newest change at or below `rev` survives if it is a put (reads
        at `rev` need it). A deletion survives only if it happened exactly at `rev`, so
        `events(rev)` still reports it; the next compaction removes it. Only keys changed
        since the previous compaction point can have anything to drop, so the scan is
        proportional to the history being removed, not to the whole key space.
        """
        txn = self.txn
        dbs = self.dbs
        keys: set[bytes] = set()
        cur = txn.cursor(dbs.hist)
        if cur.set_range(REV.pack(self.compact_rev, 0)):
            for ref, rec in cur:
                if REV.unpack_from(ref)[0] > rev:
                    break
                klen = REC.unpack_from(rec)[4]
                keys.add(rec[REC_SIZE : REC_SIZE + klen])
        limit = REV.pack(rev + 1, 0)
        idx = self.idx
        for key in sorted(keys):
            if not idx.set_key(key):
                raise RuntimeError(f"history has {key!r} but the key index does not")
            dups = []
            for d in idx.iternext_dup():
                if d[:REF_SIZE] >= limit:
                    break
                dups.append(d)
            last = dups.pop()
            if last[REF_SIZE] and REV.unpack_from(last)[0] < rev:
                dups.append(last)
            for d in dups:
                txn.delete(key, d, db=dbs.index)
                rec = txn.pop(d[:REF_SIZE], db=dbs.hist)
                self.space -= record_cost(len(rec), len(key))

    def _lease_grant(self, cmd: LeaseGrant, index: int) -> LeaseGrantResponse:
        validate(cmd, self.max_key_size)
        if cmd.ttl > leases.MAX_LEASE_TTL:
            raise LeaseTTLTooLargeError()
        if cmd.id:
            lease_id = cmd.id
            if self.lease_exists(lease_id):
                raise LeaseExistsError()
        else:
            lease_id = leases.derive_lease_id(index, self.lease_exists)
        self.reserve(LEASE_OVERHEAD)
        self.txn.put(leases.lease_key(lease_id), leases.encode_lease(cmd.ttl, 0), db=self.dbs.lease)
        self.space += LEASE_OVERHEAD
        return LeaseGrantResponse(self.current, lease_id, cmd.ttl)

    def _lease_revoke(self, cmd: LeaseRevoke, index: int) -> LeaseRevokeResponse:
        validate(cmd, self.max_key_size)
        if not self.lease_exists(cmd.id):
            raise LeaseNotFoundError()
        for key in leases.attached_keys(self.txn, self.dbs.lease_keys, cmd.id):
            prev = self.latest(key)
            if prev is None or prev.lease != cmd.id:
                raise RuntimeError(f"lease {cmd.id} lists {key!r}, which is not attached to it")
            self.write_delete(prev)
        self.txn.delete(leases.lease_key(cmd.id), db=self.dbs.lease)
        self.space -= LEASE_OVERHEAD
        return LeaseRevokeResponse(self.current)

    def _lease_checkpoint(self, cmd: LeaseCheckpoint, index: int) -> LeaseCheckpointResponse:
        txn = self.txn
        for lease_id, remaining in cmd.checkpoints:
            if not 0 < lease_id <= leases.MAX_ID:
                continue
            raw = txn.get(leases.lease_key(lease_id), db=self.dbs.lease)
            if raw is None:
                continue
            ttl, _ = leases.decode_lease(raw)
            txn.put(
                leases.lease_key(lease_id),
                leases.encode_lease(ttl, min(max(0, remaining), leases.MAX_LEASE_TTL)),
                db=self.dbs.lease,
            )
        return LeaseCheckpointResponse(self.current)
