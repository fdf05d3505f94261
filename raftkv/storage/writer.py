"""Applying commands inside the batch's LMDB write transaction: total and bounded.

A `Writer` is created per `apply()` call. It carries the counters (revision, logical
space, dedup sequence numbers, applied index, history digest) as plain attributes and
hands them back via `state()`, which the store writes in the same transaction; if the
batch aborts, the store's committed state is untouched.

Apply is total: every committed entry yields a result, never an exception. Each
command runs in its own nested LMDB transaction; if it fails — a refusal such as
LeaseNotFound or NoSpace, a read over its budget, or even a bug — the nested
transaction is aborted and the counters rolled back, so nothing of it remains and the
error becomes the entry's stored result. The same code on the same state fails the
same way on every member, so a bad entry can never poison the log or split replicas.
Only local storage failures (the disk is full, LMDB reports damage) escape, and those
stop the whole batch so the node can retry it or stop.

A Txn works like etcd's applier: compares (including those of nested txns) are
evaluated against the state before the txn, then the ops of the chosen branches run;
its reads are bounded by the budget the proposer stamped into it.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb
import structlog

from raftkv.errors import (
    Compacted,
    FutureRevision,
    InternalError,
    Invalid,
    InvalidArgument,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NoSpace,
    RaftkvError,
    RequestIdConflict,
)
from raftkv.storage import leases
from raftkv.storage.commands import (
    MAX_CLIENT_ID,
    Alarm,
    AlarmType,
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
from raftkv.storage.errors import CorruptionError
from raftkv.storage.layout import (
    ALARM_KEY,
    DIGEST_MOD,
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
    record_digest,
)
from raftkv.storage.results import (
    AlarmResponse,
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
    decode_outcome,
    encode_outcome,
)
from raftkv.storage.txnapply import TxnApply
from raftkv.storage.view import Budget, View

log = structlog.get_logger(__name__)

DIGEST_LEN = 16
LOG_RANGE_KEYS = 100_000  # budget of a Range entry found in the log
LOG_RANGE_BYTES = 16 << 20


class NeedsNesting(Exception):
    """A command failed after writing in the fast path: redo the batch, all nested."""


class Writer(TxnApply, View):
    """Applies entries of one batch; see the module docstring for the rules."""

    __slots__ = (
        "env",
        "root",
        "applied",
        "begin",
        "sub",
        "events",
        "space",
        "digest",
        "quota",
        "max_key_size",
        "dedup_capacity",
        "dedup_head",
        "dedup_next",
        "dedup_committed",
        "dedup_added",
        "dedup_evicted",
        "alarms",
        "nest_all",
        "_handlers",
    )

    def __init__(
        self,
        env: lmdb.Environment,
        txn: lmdb.Transaction,
        dbs: Dbs,
        state: State,
        *,
        quota: int,
        max_key_size: int,
        dedup_capacity: int,
        dedup_index: dict[bytes, int],
        alarms: set[tuple[int, int]],
        nest_all: bool = False,
    ) -> None:
        super().__init__(txn, dbs, state.revision, state.compact_revision)
        self.env = env
        self.root = txn
        self.applied = state.applied_index
        self.begin = state.revision
        self.sub = 0
        self.events: list[Event] = []
        self.space = state.space_used
        self.digest = state.hist_digest
        self.quota = quota
        self.max_key_size = max_key_size
        self.dedup_capacity = dedup_capacity
        self.dedup_head = state.dedup_head
        self.dedup_next = state.dedup_next
        # The store's committed id -> seq map is only read here; this batch's changes
        # are kept aside and merged by the store after the transaction commits.
        self.dedup_committed = dedup_index
        self.dedup_added: dict[bytes, int] = {}
        self.dedup_evicted: set[bytes] = set()
        self.alarms = set(alarms)
        self.nest_all = nest_all
        self._handlers: dict[type, Callable[[Command, int], Response]] = {
            Put: self._put,  # type: ignore[dict-item]
            DeleteRange: self._delete_range,  # type: ignore[dict-item]
            Txn: self._txn,  # type: ignore[dict-item]
            Range: self._range,  # type: ignore[dict-item]
            Compact: self._compact,  # type: ignore[dict-item]
            LeaseGrant: self._lease_grant,  # type: ignore[dict-item]
            LeaseRevoke: self._lease_revoke,  # type: ignore[dict-item]
            LeaseCheckpoint: self._lease_checkpoint,  # type: ignore[dict-item]
            Alarm: self._alarm,  # type: ignore[dict-item]
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
            self.digest,
        )

    # --- one entry ----------------------------------------------------------------------
    def apply_entry(self, index: int, data: bytes) -> ApplyResult:
        self.applied = index
        if not data:
            return ApplyResult(index, self.current)
        try:
            cmd = decode(data)
        except InvalidArgument as e:
            return ApplyResult(index, self.current, error=e)
        rid, cid = cmd.request_id, cmd.client_id
        digest = b""
        if cid is not None and not 1 <= len(cid) <= MAX_CLIENT_ID:
            err = InvalidArgument(Invalid.REQUEST_ID_TOO_LONG)
            return ApplyResult(index, self.current, error=err, request_id=rid)
        if cid is not None:
            digest = cmd.digest()
            replay = self._replay(index, rid, cid, digest)
            if replay is not None:
                return replay
        self.begin = self.current
        self.sub = 0
        self.events = []
        saved = (self.current, self.compact_rev, self.space, self.digest, self.alarms)
        if isinstance(cmd, Alarm):
            self.alarms = set(self.alarms)  # copy on write: a failed Alarm leaves no trace
        if self.nest_all or isinstance(cmd, Txn | Range):
            response, error = self._run_nested(cmd, index)
        else:
            response, error = self._run_direct(cmd, index, saved)
        if error is not None:
            self.current, self.compact_rev, self.space, self.digest, self.alarms = saved
            self.events = []
            response = None
        result = ApplyResult(index, self.current, response, error, self.events, rid)
        if cid is not None and self.dedup_capacity > 0 and not isinstance(cmd, Range):
            self._remember(cid, digest, result)
        return result

    def _run_nested(self, cmd: Command, index: int) -> tuple[Response | None, RaftkvError | None]:
        """Run a command in its own nested transaction: whatever it raises, nothing of
        it remains (a Txn may fail after writing: its reads run over budget)."""
        child = self.env.begin(write=True, parent=self.root)
        self._bind(child)
        try:
            response = self._handlers[type(cmd)](cmd, index)
            child.commit()
            return response, None
        except (lmdb.Error, CorruptionError):
            child.abort()
            raise  # local storage trouble (disk full, damage): not the entry's outcome
        except RaftkvError as e:
            child.abort()
            return None, e.with_traceback(None)  # a stored result must not pin frames
        except Exception as e:  # a bug: the same on every member, so a stored result
            child.abort()
            log.exception("applying an entry raised", index=index, command=type(cmd).__name__)
            return None, InternalError(f"{type(cmd).__name__}: {type(e).__name__}")
        finally:
            self._bind(self.root)

    def _run_direct(
        self, cmd: Command, index: int, saved: tuple[object, ...]
    ) -> tuple[Response | None, RaftkvError | None]:
        """Run a command that checks everything before its first write, in the batch's
        transaction (a nested one costs a third of a put's apply). Should it ever fail
        after writing — a refusal with the counters already moved, or any other
        exception (a bug) — the batch is redone with every command nested."""
        try:
            return self._handlers[type(cmd)](cmd, index), None
        except (lmdb.Error, CorruptionError):
            raise
        except RaftkvError as e:
            if (self.current, self.compact_rev, self.space, self.digest) != saved[:4]:
                raise NeedsNesting() from e
            return None, e.with_traceback(None)
        except Exception as e:
            raise NeedsNesting() from e

    def _bind(self, txn: lmdb.Transaction) -> None:
        self.txn = txn
        self.idx = txn.cursor(self.dbs.index)

    def _replay(
        self, index: int, rid: bytes | None, cid: bytes, digest: bytes
    ) -> ApplyResult | None:
        """The first outcome of client id `cid`, if it was seen; a conflict if the id
        was used for a different command."""
        seq = self.dedup_added.get(cid)
        if seq is None and cid not in self.dedup_evicted:
            seq = self.dedup_committed.get(cid)
        if seq is None:
            return None
        hit = self.txn.get(U64.pack(seq), db=self.dbs.dedup)
        n = hit[0]
        stored_digest = hit[1 + n : 1 + n + DIGEST_LEN]
        if stored_digest != digest:
            return ApplyResult(index, self.current, error=RequestIdConflict(), request_id=rid)
        revision, response, error = decode_outcome(hit[1 + n + DIGEST_LEN :])
        return ApplyResult(index, revision, response, error, [], rid, duplicate=True)

    def _remember(self, cid: bytes, digest: bytes, result: ApplyResult) -> None:
        """Keep the first outcome of a client id; forget the oldest beyond capacity.

        Errors are remembered too: a client told "failed" must never see a delayed
        duplicate of the same request succeed later.
        """
        txn = self.txn
        dedup = self.dbs.dedup
        outcome = encode_outcome(result.revision, result.response, result.error)
        seq = self.dedup_next
        record = bytes((len(cid),)) + cid + digest + outcome
        txn.put(U64.pack(seq), record, db=dedup, append=True)
        self.dedup_added[cid] = seq
        self.dedup_next += 1
        while self.dedup_next - self.dedup_head > self.dedup_capacity:
            old = txn.pop(U64.pack(self.dedup_head), db=dedup)
            if old is not None:
                old_cid = old[1 : 1 + old[0]]
                if self.dedup_added.pop(old_cid, None) is None:
                    self.dedup_evicted.add(old_cid)
            self.dedup_head += 1

    # --- primitive writes ------------------------------------------------------------------
    def _next_ref(self) -> bytes:
        """Revision of the next change of the current command (same main, next sub)."""
        ref = REV.pack(self.begin + 1, self.sub)
        self.sub += 1
        self.current = self.begin + 1
        return ref

    def reserve(self, cost: int) -> None:
        if self.space + cost > self.quota or self._nospace_alarm():
            raise NoSpace()

    def _nospace_alarm(self) -> bool:
        return any(a == AlarmType.NOSPACE for _, a in self.alarms)

    def put_cost(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> int:
        cost = record_cost(REC_SIZE + len(key) + len(value), len(key))
        if lease and (prev is None or prev.lease != lease):
            cost += lease_key_cost(len(key))
        return cost

    def _add_history(self, ref: bytes, rec: bytes, key: bytes) -> None:
        if not self.txn.put(ref, rec, append=True, db=self.dbs.hist):
            raise CorruptionError(f"history revision {REV.unpack(ref)} is not the newest")
        self.space += record_cost(len(rec), len(key))
        self.digest = (self.digest + record_digest(ref, rec)) % DIGEST_MOD

    def _drop_history(self, ref: bytes, key: bytes) -> None:
        rec = self.txn.pop(ref, db=self.dbs.hist)
        if rec is None:
            raise CorruptionError(f"history lost the change at {REV.unpack(ref)}")
        self.space -= record_cost(len(rec), len(key))
        self.digest = (self.digest - record_digest(ref, rec)) % DIGEST_MOD

    def write_put(self, key: bytes, value: bytes, lease: int, prev: KeyValue | None) -> None:
        ref = self._next_ref()
        main = self.current
        if prev is None:
            create, version, old_lease = main, 1, 0
        else:
            create, version, old_lease = prev.create_revision, prev.version + 1, prev.lease
        rec = REC.pack(0, create, version, lease, len(key)) + key + value
        self._add_history(ref, rec, key)
        txn = self.txn
        txn.put(key, ref + LIVE, db=self.dbs.index)
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
        self._add_history(ref, rec, key)
        self.txn.put(key, ref + TOMBSTONE, db=self.dbs.index)
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
            raise KeyNotFound()
        if cmd.lease and not self.lease_exists(cmd.lease):
            raise LeaseNotFound(cmd.lease)
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
        """A standalone read in the log (no correct proposer sends one): bounded like a
        txn's reads, so it cannot stall apply."""
        validate(cmd, self.max_key_size)
        return self.range(cmd, Budget(LOG_RANGE_KEYS, LOG_RANGE_BYTES))

    def _noop(self, cmd: Noop, index: int) -> NoopResponse:
        return NoopResponse(self.current)

    def _compact(self, cmd: Compact, index: int) -> CompactResponse:
        validate(cmd, self.max_key_size)
        rev = cmd.revision
        if rev <= self.compact_rev:
            raise Compacted(self.compact_rev)
        if rev > self.current:
            raise FutureRevision(self.current)
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
                raise CorruptionError(f"history has {key!r} but the key index does not")
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
                self._drop_history(d[:REF_SIZE], key)

    def _lease_grant(self, cmd: LeaseGrant, index: int) -> LeaseGrantResponse:
        validate(cmd, self.max_key_size)
        if cmd.ttl > leases.MAX_LEASE_TTL:
            raise LeaseTTLTooLarge(cmd.ttl)
        if cmd.id:
            lease_id = cmd.id
            if self.lease_exists(lease_id):
                raise LeaseExists(lease_id)
        else:
            lease_id = leases.derive_lease_id(index, self.lease_exists)
        self.reserve(LEASE_OVERHEAD)
        self.txn.put(leases.lease_key(lease_id), leases.encode_lease(cmd.ttl, 0), db=self.dbs.lease)
        self.space += LEASE_OVERHEAD
        return LeaseGrantResponse(self.current, lease_id, cmd.ttl)

    def _lease_revoke(self, cmd: LeaseRevoke, index: int) -> LeaseRevokeResponse:
        validate(cmd, self.max_key_size)
        if not self.lease_exists(cmd.id):
            raise LeaseNotFound(cmd.id)
        for key in leases.attached_keys(self.txn, self.dbs.lease_keys, cmd.id):
            prev = self.latest(key)
            if prev is None or prev.lease != cmd.id:
                raise CorruptionError(f"lease {cmd.id} lists {key!r}, which is not attached to it")
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

    def _alarm(self, cmd: Alarm, index: int) -> AlarmResponse:
        """etcd's Alarm ACTIVATE/DEACTIVATE, replicated: every member refuses growing
        writes while NOSPACE is raised, whichever member first ran out of quota."""
        pair = (cmd.member_id, int(cmd.alarm))
        if cmd.alarm != AlarmType.NONE and 0 <= cmd.member_id < 1 << 64:
            key = ALARM_KEY.pack(cmd.member_id, int(cmd.alarm))
            if cmd.active:
                self.txn.put(key, b"", db=self.dbs.alarm)
                self.alarms.add(pair)
            else:
                self.txn.delete(key, db=self.dbs.alarm)
                self.alarms.discard(pair)
        return AlarmResponse(self.current, sorted(self.alarms))


def load_alarms(txn: lmdb.Transaction, dbs: Dbs) -> set[tuple[int, int]]:
    return {ALARM_KEY.unpack(k) for k, _ in txn.cursor(dbs.alarm)}  # type: ignore[misc]
