"""The durable Raft log: entries, hard state and snapshot metadata on LMDB.

`LogStore` implements the core's read-only `LogStorage` protocol with exactly the
semantics of `MemoryStorage` (a "dummy" entry at the log offset keeps the term of the
last compacted index answerable), plus the same write methods. The driver normally
uses `save()`, which persists one Ready in ONE write transaction: one fsync however
many entries it carries (group commit).

Concurrency: writers are serialised by a lock (LMDB allows one writer anyway). Readers
take no lock: each read works from one immutable `_LogState` snapshot of the cached
bounds plus one LMDB read transaction, so a read racing a write sees either the old or
the new log, never a mix that breaks its own checks: if the read transaction lacks an
entry the cache promised, the miss is classified against the bounds recorded in that
same transaction. The core never reads indexes that are still being written (they
live in its unstable log until `advance`), so a concurrent reader can only lose a race
to compaction, which it reports as `CompactedError` exactly like MemoryStorage would
have a moment later.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import lmdb

from raftkv.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta
from raftkv.raft.storage import CompactedError, UnavailableError
from raftkv.storage import codec
from raftkv.storage.env import MiB, env_size, open_env
from raftkv.storage.verify import verify_log

LOG_DB = b"log"
RAFTMETA_DB = b"raftmeta"

_K_HARD_STATE = b"hard_state"
_K_DUMMY = b"dummy"  # (index, term) of the entry just before the first stored one
_K_SNAP_META = b"snapshot_meta"
_K_SNAP_DATA = b"snapshot_data"

# Terms of the most recent entries kept in memory: the core asks for the term of
# recent indexes on every append and every commit check.
_TERM_CACHE = 1024

DEFAULT_MAX_INLINE_SNAPSHOT = 1 * MiB


@dataclass(frozen=True, slots=True)
class _LogState:
    """Everything cached about the log, swapped atomically after each commit."""

    dummy_index: int  # first_index - 1: the snapshot / last compacted index
    dummy_term: int
    last_index: int
    tail_start: int  # tail_terms[i] is the term of entry tail_start + i
    tail_terms: tuple[int, ...]

    def cached_term(self, index: int) -> int | None:
        i = index - self.tail_start
        if 0 <= i < len(self.tail_terms):
            return self.tail_terms[i]
        return None


class LogStore:
    """LMDB-backed `LogStorage` with MemoryStorage's write methods plus `save()`."""

    def __init__(
        self, env: lmdb.Environment, *, max_inline_snapshot: int = DEFAULT_MAX_INLINE_SNAPSHOT
    ) -> None:
        self._max_inline_snapshot = max_inline_snapshot
        self._write_lock = threading.Lock()
        self._open(env)

    def _open(self, env: lmdb.Environment) -> None:
        self._env = env
        self._log = env.open_db(LOG_DB)
        self._meta = env.open_db(RAFTMETA_DB)
        with env.begin() as txn:
            hs = txn.get(_K_HARD_STATE, db=self._meta)
            self._hard_state = codec.decode_hard_state(hs) if hs else HardState()
            raw_meta = txn.get(_K_SNAP_META, db=self._meta)
            meta = codec.decode_snapshot_meta(raw_meta) if raw_meta else SnapshotMeta()
            self._snapshot = Snapshot(meta, txn.get(_K_SNAP_DATA, b"", db=self._meta))
            raw_dummy = txn.get(_K_DUMMY, db=self._meta)
            dummy_index, dummy_term = _decode_dummy(raw_dummy) if raw_dummy else (0, 0)
            self._state = self._load_state(txn, dummy_index, dummy_term)

    def _load_state(self, txn: lmdb.Transaction, dummy_index: int, dummy_term: int) -> _LogState:
        """Rebuild the cache from disk, checking the log is contiguous at its ends."""
        cur = txn.cursor(self._log)
        if not cur.last():
            return _LogState(dummy_index, dummy_term, dummy_index, dummy_index + 1, ())
        last = codec.INDEX_KEY.unpack(cur.key())[0]
        terms: list[int] = []
        for key, value in cur.iterprev():
            idx = codec.INDEX_KEY.unpack(key)[0]
            if idx != last - len(terms):
                raise RuntimeError(f"raft log has a hole before index {last - len(terms)}")
            terms.append(codec.entry_term(value))
            if len(terms) == _TERM_CACHE:
                break
        terms.reverse()
        first_stored = self._first_stored(txn)
        if first_stored != dummy_index + 1:
            raise RuntimeError(
                f"raft log starts at {first_stored} but the compaction point is {dummy_index}"
            )
        return _LogState(dummy_index, dummy_term, last, last - len(terms) + 1, tuple(terms))

    @property
    def env(self) -> lmdb.Environment:
        return self._env

    def verify(self) -> int:
        """Check every entry's checksum and the log's contiguity (CorruptionError)."""
        return verify_log(self._env, self._log)

    def reopen(self) -> None:
        """Close and reopen the environment (LMDB refuses every transaction after a
        failed meta-page write, e.g. on a full disk, until it is reopened). The cache
        only ever moves on a successful commit, so it matches what is on disk."""
        with self._write_lock:
            path = Path(self._env.path())
            map_size = self._env.info()["map_size"]
            sync = bool(self._env.flags()["sync"])
            self._env.close()
            self._open(open_env(path, map_size, sync=sync))

    def used_bytes(self) -> int:
        return env_size(self._env)

    def _first_stored(self, txn: lmdb.Transaction) -> int:
        cur = txn.cursor(self._log)
        return codec.INDEX_KEY.unpack(cur.key())[0] if cur.first() else 0

    # --- LogStorage ------------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        """Hard state and the membership as of the last snapshot (as etcd does)."""
        return self._hard_state, self._snapshot.meta.conf_state

    def first_index(self) -> int:
        return self._state.dummy_index + 1

    def last_index(self) -> int:
        return self._state.last_index

    def term(self, index: int) -> int:
        st = self._state
        if index < st.dummy_index:
            raise CompactedError(index)
        if index > st.last_index:
            raise UnavailableError(index)
        if index == st.dummy_index:
            return st.dummy_term
        cached = st.cached_term(index)
        if cached is not None:
            return cached
        with self._env.begin() as txn:
            raw = txn.get(codec.index_key(index), db=self._log)
            if raw is None:
                self._raise_missing(txn, index, index + 1)
        return codec.entry_term(raw)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        st = self._state
        if lo <= st.dummy_index:
            raise CompactedError(lo)
        if hi > st.last_index + 1:
            raise UnavailableError(hi)
        out: list[Entry] = []
        if lo >= hi:
            return out
        total = 0
        expect = lo
        decode = codec.decode_entry
        with self._env.begin() as txn:
            cur = txn.cursor(self._log)
            if cur.set_key(codec.index_key(lo)):
                for value in cur.iternext(keys=False):
                    e = decode(value)
                    if e.index != expect:
                        break
                    if max_bytes is not None:
                        total += e.size()
                        if total > max_bytes and out:
                            return out
                    out.append(e)
                    expect += 1
                    if expect == hi:
                        return out
            self._raise_missing(txn, expect, hi)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def _raise_missing(self, txn: lmdb.Transaction, index: int, hi: int) -> NoReturn:
        """An entry the cached bounds promised is not in `txn`: a writer committed a
        compaction (or a truncation) after this read looked at the cache. Classify the
        miss against the bounds as of `txn` itself."""
        raw_dummy = txn.get(_K_DUMMY, db=self._meta)
        dummy_index = _decode_dummy(raw_dummy)[0] if raw_dummy else 0
        if index <= dummy_index:
            raise CompactedError(index)
        cur = txn.cursor(self._log)
        last = codec.INDEX_KEY.unpack(cur.key())[0] if cur.last() else dummy_index
        if hi > last + 1:
            raise UnavailableError(hi)
        raise RuntimeError(f"raft log entry {index} is missing inside [{dummy_index + 1}, {last}]")

    # --- extra reads ------------------------------------------------------------
    def hard_state(self) -> HardState:
        return self._hard_state

    def conf_state(self) -> ConfState:
        """Membership recorded with the last snapshot."""
        return self._snapshot.meta.conf_state

    # --- writes -------------------------------------------------------------------
    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
    ) -> None:
        """Persist one Ready: snapshot, then entries, then hard state; one fsync.

        Either everything in the call becomes durable or nothing does, so a crash can
        never leave a hard state whose commit index points past entries that were not
        written with it.
        """
        with self._write_lock:
            w = _Writer(self)
            try:
                if snapshot is not None and not snapshot.is_empty():
                    w.apply_snapshot(snapshot)
                if entries:
                    w.append(entries)
                if hard_state is not None:
                    w.set_hard_state(hard_state)
            except BaseException:
                w.txn.abort()
                raise
            w.commit()

    def set_hard_state(self, hs: HardState) -> None:
        self.save(hs, ())

    def append(self, entries: Sequence[Entry]) -> None:
        """Append, truncating any conflicting suffix first (entries are contiguous)."""
        self.save(None, entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by `snap` (ignored unless newer than the current one)."""
        self.save(None, (), snap)

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        """Record a snapshot of the applied state at `index` (the term comes from the log)."""
        with self._write_lock:
            if index <= self._snapshot.meta.index:
                return self._snapshot
            snap = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
            w = _Writer(self)
            try:
                w.put_snapshot(snap)
            except BaseException:
                w.txn.abort()
                raise
            w.commit()
            return snap

    def set_snapshot_meta(self, meta: SnapshotMeta) -> Snapshot:
        """Record snapshot metadata whose payload lives elsewhere (the state machine).

        Unlike `apply_snapshot` this leaves the log alone: the node calls it after
        taking a snapshot of its own applied state, before compacting.
        """
        with self._write_lock:
            if meta.index <= self._snapshot.meta.index:
                return self._snapshot
            w = _Writer(self)
            try:
                w.put_snapshot(Snapshot(meta))
            except BaseException:
                w.txn.abort()
                raise
            w.commit()
            return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index`; its term survives as the dummy."""
        with self._write_lock:
            st = self._state
            if index <= st.dummy_index:
                return
            if index > st.last_index:
                raise UnavailableError(index)
            w = _Writer(self)
            try:
                w.compact(index, self.term(index))
            except BaseException:
                w.txn.abort()
                raise
            w.commit()


class _Writer:
    """One write transaction over the log, tracking the bounds it will leave behind.

    The store's cache is only replaced after `commit()` succeeds, so an aborted write
    (a gap in the entries, a crash of the caller) never leaves the cache ahead of disk.
    """

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.txn = store._env.begin(write=True)
        st = store._state
        self.dummy_index = st.dummy_index
        self.dummy_term = st.dummy_term
        self.last_index = st.last_index
        self.tail_start = st.tail_start
        self.tail_terms: list[int] = list(st.tail_terms)
        self.hard_state = store._hard_state
        self.snapshot = store._snapshot

    def apply_snapshot(self, snap: Snapshot) -> None:
        if snap.meta.index <= self.snapshot.meta.index:
            return
        self.put_snapshot(snap)
        self.txn.drop(self.store._log, delete=False)
        self._set_dummy(snap.meta.index, snap.meta.term)
        self.last_index = snap.meta.index
        self.tail_start = snap.meta.index + 1
        self.tail_terms = []

    def put_snapshot(self, snap: Snapshot) -> None:
        if len(snap.data) > self.store._max_inline_snapshot:
            raise ValueError(
                f"snapshot data of {len(snap.data)} bytes is too large to keep in the log "
                f"store (limit {self.store._max_inline_snapshot}); stream it from the "
                "state machine and pass only the metadata"
            )
        meta_db = self.store._meta
        self.txn.put(_K_SNAP_META, codec.encode_snapshot_meta(snap.meta), db=meta_db)
        if snap.data:
            self.txn.put(_K_SNAP_DATA, snap.data, db=meta_db)
        else:
            self.txn.delete(_K_SNAP_DATA, db=meta_db)
        self.snapshot = snap

    def append(self, entries: Sequence[Entry]) -> None:
        first = self.dummy_index + 1
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        start = entries[0].index
        if start > self.last_index + 1:
            raise ValueError(f"missing log entry before {start} (last is {self.last_index})")
        for i in range(1, len(entries)):
            if entries[i].index != start + i:
                raise ValueError(f"entries to append are not contiguous at {entries[i].index}")
        log = self.store._log
        cur = self.txn.cursor(log)
        if start <= self.last_index:
            # Conflicting suffix: everything at or after `start` goes first.
            if cur.set_range(codec.index_key(start)):
                while cur.delete():
                    pass
            cut = start - self.tail_start
            if cut > 0:
                del self.tail_terms[cut:]
            else:
                self.tail_start, self.tail_terms = start, []
        enc = codec.encode_entry
        key = codec.index_key
        cur.putmulti([(key(e.index), enc(e)) for e in entries], append=True)
        self.last_index = entries[-1].index
        self.tail_terms.extend(e.term for e in entries)
        excess = len(self.tail_terms) - _TERM_CACHE
        if excess > 0:
            del self.tail_terms[:excess]
            self.tail_start += excess

    def compact(self, index: int, term: int) -> None:
        cur = self.txn.cursor(self.store._log)
        stop = codec.index_key(index)
        if cur.first():
            while cur.key() and cur.key() <= stop:
                cur.delete()
        self._set_dummy(index, term)
        if self.tail_start <= index:
            drop = min(index + 1 - self.tail_start, len(self.tail_terms))
            del self.tail_terms[:drop]
            self.tail_start = index + 1

    def set_hard_state(self, hs: HardState) -> None:
        self.txn.put(_K_HARD_STATE, codec.encode_hard_state(hs), db=self.store._meta)
        self.hard_state = hs

    def _set_dummy(self, index: int, term: int) -> None:
        self.txn.put(_K_DUMMY, _encode_dummy(index, term), db=self.store._meta)
        self.dummy_index, self.dummy_term = index, term

    def commit(self) -> None:
        self.txn.commit()
        s = self.store
        s._hard_state = self.hard_state
        s._snapshot = self.snapshot
        s._state = _LogState(
            self.dummy_index,
            self.dummy_term,
            self.last_index,
            self.tail_start,
            tuple(self.tail_terms),
        )


def _encode_dummy(index: int, term: int) -> bytes:
    return codec.INDEX_KEY.pack(index) + codec.INDEX_KEY.pack(term)


def _decode_dummy(buf: bytes) -> tuple[int, int]:
    return codec.INDEX_KEY.unpack_from(buf)[0], codec.INDEX_KEY.unpack_from(buf, 8)[0]
