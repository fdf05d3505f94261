"""Reads over one LMDB transaction: ranges, compares, historical events.

A `View` wraps either a read-only transaction (client reads, watch catch-up) or the
apply batch's write transaction (compares and ranges inside a Txn must see the txn's
own earlier writes, as etcd's do). Everything a read needs — the current and the
compacted revision — comes from the same transaction, so a read is a consistent
snapshot even while another thread applies.
"""

from __future__ import annotations

import lmdb

from raftkv.errors import Compacted, FutureRevision, ResultTooLarge
from raftkv.storage.commands import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    Put,
    Range,
    SortOrder,
    Txn,
)
from raftkv.storage.commands import SortTarget as ST
from raftkv.storage.errors import CorruptionError
from raftkv.storage.layout import FLAG_TOMBSTONE, REC, REC_SIZE, REF_SIZE, REV, Dbs
from raftkv.storage.results import (
    Event,
    EventPage,
    EventType,
    KeyValue,
    RangeResponse,
    Response,
    TxnResponse,
)

_MAX = (1 << 64) - 1
_EMPTY_KV = KeyValue(b"", 0, 0, 0, b"", 0)

_SORT_KEYS = {
    ST.KEY: lambda kv: kv.key,
    ST.VERSION: lambda kv: kv.version,
    ST.CREATE: lambda kv: kv.create_revision,
    ST.MOD: lambda kv: kv.mod_revision,
    ST.VALUE: lambda kv: kv.value,
}


def decode_kv(ref: bytes, rec: bytes, keys_only: bool = False) -> KeyValue:
    """A live history record (under revision `ref`) as a KeyValue."""
    _flags, create, version, lease, klen = REC.unpack_from(rec)
    end = REC_SIZE + klen
    return KeyValue(
        rec[REC_SIZE:end],
        create,
        REV.unpack_from(ref)[0],
        version,
        b"" if keys_only else rec[end:],
        lease,
    )


def decode_event(ref: bytes, rec: bytes) -> Event:
    flags, create, version, lease, klen = REC.unpack_from(rec)
    end = REC_SIZE + klen
    main = REV.unpack_from(ref)[0]
    key = rec[REC_SIZE:end]
    if flags & FLAG_TOMBSTONE:
        return Event(EventType.DELETE, KeyValue(key, 0, main, 0, b"", 0), None)
    return Event(EventType.PUT, KeyValue(key, create, main, version, rec[end:], lease), None)


class Budget:
    """What one request's reads may scan (keys) and return (bytes); 0 = unbounded.

    Ranges inside a txn run in the apply path, where an unbounded read would stall
    Raft on every member and again at every restart: the proposer stamps the bound
    into the txn, so every member stops at the same point with the same error.
    """

    __slots__ = ("max_keys", "max_bytes", "keys", "bytes")

    def __init__(self, max_keys: int = 0, max_bytes: int = 0) -> None:
        self.max_keys = max_keys
        self.max_bytes = max_bytes
        self.keys = 0
        self.bytes = 0

    def visit(self, n: int = 1) -> None:
        self.keys += n
        if self.max_keys and self.keys > self.max_keys:
            raise ResultTooLarge("keys", self.max_keys)

    def take(self, n: int) -> None:
        self.bytes += n
        if self.max_bytes and self.bytes > self.max_bytes:
            raise ResultTooLarge("bytes", self.max_bytes)


class _Unbounded(Budget):
    """The budget of reads nobody bounds: counts nothing (it is shared)."""

    def visit(self, n: int = 1) -> None:
        pass

    def take(self, n: int) -> None:
        pass


UNBOUNDED = _Unbounded()


def span_end(key: bytes, range_end: bytes) -> bytes | None:
    """Exclusive upper bound of etcd's (key, range_end); None means unbounded."""
    if not range_end:
        return key + b"\x00"
    if range_end == b"\x00":
        return None
    return range_end


class View:
    """Reads at `current` (the newest revision visible in `txn`)."""

    __slots__ = ("txn", "dbs", "idx", "current", "compact_rev")

    def __init__(self, txn: lmdb.Transaction, dbs: Dbs, current: int, compact_rev: int) -> None:
        self.txn = txn
        self.dbs = dbs
        self.idx = txn.cursor(dbs.index)
        self.current = current
        self.compact_rev = compact_rev

    # --- single keys ----------------------------------------------------------------
    def latest_ref(self, key: bytes) -> bytes | None:
        """Revision (16 bytes) of the key's live value, None if absent or deleted."""
        idx = self.idx
        if not idx.set_key(key):
            return None
        idx.last_dup()
        d = idx.value()
        return None if d[REF_SIZE] else d[:REF_SIZE]

    def latest(self, key: bytes) -> KeyValue | None:
        ref = self.latest_ref(key)
        if ref is None:
            return None
        return decode_kv(ref, self.txn.get(ref, db=self.dbs.hist))

    def kv(self, ref: bytes, keys_only: bool = False) -> KeyValue:
        return decode_kv(ref, self.txn.get(ref, db=self.dbs.hist), keys_only)

    # --- ranges -------------------------------------------------------------------------
    def refs(
        self, key: bytes, range_end: bytes, rev: int, budget: Budget = UNBOUNDED
    ) -> list[tuple[bytes, bytes]]:
        """(key, revision) of every key in the range that is live at `rev`, key order.

        Every index key walked counts against `budget` (checked every 1024 keys, so
        the walk itself stays cheap and bounded)."""
        idx = self.idx
        out: list[tuple[bytes, bytes]] = []
        latest = rev >= self.current
        if not range_end:
            budget.visit()
            if idx.set_key(key):
                ref = self._ref_at(key, rev, latest)
                if ref is not None:
                    out.append((key, ref))
            return out
        end = span_end(key, range_end)
        if end is not None and end <= key:
            return out
        if not idx.set_range(key):
            return out
        append = out.append
        walked = 0
        bounded = budget.max_keys > 0
        while True:
            k = idx.key()
            if end is not None and k >= end:
                break
            if latest:
                idx.last_dup()
                d = idx.value()
                if not d[REF_SIZE]:
                    append((k, d[:REF_SIZE]))
            else:
                ref = self._ref_at(k, rev, False)
                if ref is not None:
                    append((k, ref))
            walked += 1
            if bounded and walked & 1023 == 0:
                budget.visit(1024)
            if not idx.next_nodup():
                break
        budget.visit(walked & 1023 if bounded else walked)
        return out

    def _ref_at(self, key: bytes, rev: int, latest: bool) -> bytes | None:
        """With the cursor on `key`, the revision of its value at `rev` (None if none)."""
        idx = self.idx
        if latest:
            idx.last_dup()
        elif idx.set_range_dup(key, REV.pack(rev + 1, 0)):
            if not idx.prev_dup():
                return None  # every change of the key is newer than rev
        else:
            idx.last_dup()  # every change of the key is at or before rev
        d = idx.value()
        return None if d[REF_SIZE] else d[:REF_SIZE]

    def check_revision(self, rev: int) -> int:
        """etcd's rule for a read at `rev` (0 = current); returns the revision to read."""
        if rev > self.current:
            raise FutureRevision(self.current)
        if rev <= 0:
            return self.current
        if rev < self.compact_rev:
            raise Compacted(self.compact_rev)
        return rev

    def range(self, r: Range, budget: Budget = UNBOUNDED) -> RangeResponse:
        rev = self.check_revision(r.revision)
        refs = self.refs(r.key, r.range_end, rev, budget)
        count = len(refs)
        if r.count_only:
            return RangeResponse(self.current, [], count, False)
        order = r.sort_order
        if r.sort_target != ST.KEY and order == SortOrder.NONE:
            order = SortOrder.ASCEND  # etcd: a non-key sort target implies ascending
        filtered = bool(
            r.min_mod_revision
            or r.max_mod_revision
            or r.min_create_revision
            or r.max_create_revision
        )
        limit = r.limit
        needs_all = filtered or (order != SortOrder.NONE and not _key_ascending(r, order))
        if limit > 0 and not needs_all:
            refs = refs[: limit + 1]  # one extra tells whether there is more
        get = self.txn.get
        hist = self.dbs.hist
        # etcd sorts before it drops values for keys_only, so a sort by value needs them.
        sort_values = order != SortOrder.NONE and r.sort_target == ST.VALUE
        skip_values = r.keys_only and not sort_values
        if budget.max_bytes:
            kvs = []
            for _k, ref in refs:
                kv = decode_kv(ref, get(ref, db=hist), skip_values)
                budget.take(len(kv.key) + len(kv.value))
                kvs.append(kv)
        else:
            kvs = [decode_kv(ref, get(ref, db=hist), skip_values) for _k, ref in refs]
        if filtered:
            kvs = [kv for kv in kvs if _passes(r, kv)]
        if order != SortOrder.NONE and not _key_ascending(r, order):
            kvs.sort(key=_SORT_KEYS[r.sort_target], reverse=order == SortOrder.DESCEND)
        more = False
        if limit > 0 and len(kvs) > limit:
            del kvs[limit:]
            more = True
        if r.keys_only and not skip_values:
            kvs = [kv._replace(value=b"") for kv in kvs]
        return RangeResponse(self.current, kvs, count, more)

    # --- compares -------------------------------------------------------------------------
    def compare(self, c: Compare, budget: Budget = UNBOUNDED) -> bool:
        """etcd's applyCompare: every key in the range must satisfy the compare; an empty
        range compares as one zero-valued key, except that VALUE compares then fail."""
        refs = self.refs(c.key, c.range_end, self.current, budget)
        if not refs:
            if c.target == CompareTarget.VALUE:
                return False
            return _compare_kv(c, _EMPTY_KV)
        get = self.txn.get
        hist = self.dbs.hist
        return all(_compare_kv(c, decode_kv(ref, get(ref, db=hist))) for _k, ref in refs)

    def read_txn(self, t: Txn, budget: Budget = UNBOUNDED) -> TxnResponse:
        """A txn with no writes, evaluated on this snapshot (etcd serves read-only txns
        like reads: after a ReadIndex round, never through the log)."""
        ok = all(self.compare(c, budget) for c in t.compares)
        responses: list[Response] = []
        for op in t.success if ok else t.failure:
            if isinstance(op, Range):
                responses.append(self.range(op, budget))
            elif isinstance(op, Txn):
                responses.append(self.read_txn(op, budget))
            else:
                raise TypeError("read_txn got a write")
        return TxnResponse(0, ok, responses)

    # --- history ------------------------------------------------------------------------
    def events(
        self,
        start_revision: int,
        key: bytes,
        range_end: bytes,
        limit: int = 0,
        prev_kv: bool = False,
        max_bytes: int = 0,
    ) -> EventPage:
        """Changes at revisions >= start_revision to keys in the range, in order.

        With `limit` (events) or `max_bytes` (their keys and values) the scan stops at
        a revision boundary once the page is that full (a txn's events are never split
        across pages), so a watcher catching up holds one bounded page at a time. With
        `prev_kv`, events at exactly the compact revision have none: compaction dropped
        the older value (etcd, which reads it at revision - 1, omits it there too).
        """
        if self.compact_rev and start_revision < self.compact_rev:
            raise Compacted(self.compact_rev)
        start_revision = max(start_revision, 1)
        events: list[Event] = []
        if start_revision > self.current:
            return EventPage(events, self.current)
        end = span_end(key, range_end)
        cur = self.txn.cursor(self.dbs.hist)
        if not cur.set_range(REV.pack(start_revision, 0)):
            return EventPage(events, self.current)
        last_main = start_revision - 1
        size = 0
        for ref, rec in cur:
            main = REV.unpack_from(ref)[0]
            if main != last_main:
                if (limit and len(events) >= limit) or (max_bytes and size >= max_bytes):
                    return EventPage(events, last_main)
                last_main = main
            klen = REC.unpack_from(rec)[4]
            k = rec[REC_SIZE : REC_SIZE + klen]
            if k < key or (end is not None and k >= end):
                continue
            ev = decode_event(ref, rec)
            if prev_kv:
                ev = Event(ev.type, ev.kv, self._prev_kv(k, ref, rec[0]))
                if ev.prev_kv is not None:
                    size += len(ev.prev_kv.value)
            size += len(rec)
            events.append(ev)
        return EventPage(events, self.current)

    def _prev_kv(self, key: bytes, ref: bytes, flags: int) -> KeyValue | None:
        """The key's value just before the change at `ref`."""
        idx = self.idx
        if not idx.set_key_dup(key, ref + bytes((flags & FLAG_TOMBSTONE,))):
            raise CorruptionError(f"index lost the change of {key!r} at {REV.unpack(ref)}")
        if not idx.prev_dup():
            return None
        d = idx.value()
        if d[REF_SIZE]:
            return None
        return self.kv(d[:REF_SIZE])


def _key_ascending(r: Range, order: SortOrder) -> bool:
    """Results already come in ascending key order; no sort needed then."""
    return r.sort_target == ST.KEY and order == SortOrder.ASCEND


def _passes(r: Range, kv: KeyValue) -> bool:
    if r.max_mod_revision and kv.mod_revision > r.max_mod_revision:
        return False
    if r.min_mod_revision and kv.mod_revision < r.min_mod_revision:
        return False
    if r.max_create_revision and kv.create_revision > r.max_create_revision:
        return False
    return not (r.min_create_revision and kv.create_revision < r.min_create_revision)


def _compare_kv(c: Compare, kv: KeyValue) -> bool:
    t = c.target
    if t == CompareTarget.VALUE:
        a: int | bytes = kv.value
    elif t == CompareTarget.VERSION:
        a = kv.version
    elif t == CompareTarget.CREATE:
        a = kv.create_revision
    elif t == CompareTarget.MOD:
        a = kv.mod_revision
    else:
        a = kv.lease
    b = c.operand
    res = c.result
    if res == CompareResult.EQUAL:
        return a == b
    if res == CompareResult.NOT_EQUAL:
        return a != b
    if res == CompareResult.GREATER:
        return a > b  # type: ignore[operator]
    return a < b  # type: ignore[operator]


def is_read_only(t: Txn) -> bool:
    return not any(
        isinstance(op, Put | DeleteRange) or (isinstance(op, Txn) and not is_read_only(op))
        for op in (*t.success, *t.failure)
    )
