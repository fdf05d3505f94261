"""The MVCC state machine: etcd v3 key-value semantics in its own LMDB environment.

`MvccStore.apply()` takes committed Raft entries and applies them in ONE write
transaction together with the new applied index, so a crash mid-apply replays the
whole batch (entries at or below the stored applied index are skipped: exactly once).
Reads do not go through Raft; the node decides when a read is linearizable and then
calls `range()` here.

Determinism is the contract with the other replicas: given the same entries, every
replica returns the same results and ends in the same state. That is why lease ids
are derived from the Raft index, why the quota is checked against a logical size
computed from the applied commands rather than against LMDB's file (see layout.py),
why read budgets inside txns are stamped by the proposer, and why nothing here reads
a clock or a random source.

The environment holds only the state machine (the Raft log has its own, log.py), so
neither can starve the other, and `defragment()` can rewrite it compactly.

Threads: one thread applies (apply/restore/defragment are serialised by a lock);
any number of threads may read concurrently, each read working on one LMDB snapshot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lmdb
import structlog

from raftkv.errors import Unavailable, Why
from raftkv.storage import leases
from raftkv.storage.commands import AlarmType, Range, Txn, validate
from raftkv.storage.env import GiB, MiB, env_size, open_env
from raftkv.storage.errors import is_corruption
from raftkv.storage.layout import K_CONF_STATE, K_SCHEMA, K_STATE, SCHEMA_VERSION, U64, Dbs, State
from raftkv.storage.results import (
    ApplyResult,
    EventPage,
    KeyValue,
    LeaseInfo,
    RangeResponse,
    TxnResponse,
)
from raftkv.storage.snapshot import SnapshotStream, open_stream, restore_into
from raftkv.storage.verify import verify_state
from raftkv.storage.view import UNBOUNDED, Budget, View
from raftkv.storage.writer import NeedsNesting, Writer, load_alarms

log = structlog.get_logger(__name__)

DEFAULT_QUOTA = 2 * GiB  # etcd's default backend quota
DEFAULT_DEDUP_CAPACITY = 100_000
DEFAULT_SNAPSHOT_CHUNK = 1 * MiB
# Test mode's revision-from-unsynced-meta mutation only: how many revisions the
# side-car revision record may lag behind the data (a lazily flushed metadata file).
REVISION_META_EVERY = 32


def map_size_for(quota_bytes: int) -> int:
    """The LMDB map to open for a quota: virtual address space only (the file grows
    as pages are used), so it is generous — four times the quota, at least 16 GiB —
    and the deterministic quota, not LMDB's MapFullError, is what refuses writes."""
    return max(16 * GiB, 4 * quota_bytes)


class MvccStore:
    """etcd-style revisioned key-value store, leases, alarms and dedup table."""

    def __init__(
        self,
        env: lmdb.Environment,
        *,
        quota_bytes: int = DEFAULT_QUOTA,
        dedup_capacity: int = DEFAULT_DEDUP_CAPACITY,
        revision_meta: Path | None = None,
    ) -> None:
        if quota_bytes <= 0:
            raise ValueError("the backend quota must be positive")
        self._env = env
        self._dbs = Dbs(env)
        self.quota_bytes = quota_bytes
        self._dedup_capacity = dedup_capacity
        self._max_key_size = env.max_key_size()
        self._lock = threading.Lock()  # apply, restore, defragment
        # Readers hold this only while they use the environment (never across an
        # await); defragment holds it only for the instant it swaps the files.
        self._swap = threading.RLock()
        self._long_readers = 0  # snapshot streams in flight (defragment waits for them)
        self.on_corruption: Callable[[BaseException], None] | None = None
        self._defragmenting = False
        # Test mode's non-atomic-apply mutation only (None in production): when set, the
        # applied index is committed in its own transaction before the state change,
        # and this hook (a failpoint) runs between the two.
        self.split_applied: Callable[[], None] | None = None
        # Test mode's revision-from-unsynced-meta mutation only (None in production): a
        # side-car file holding the revision counter, flushed lazily and never fsynced,
        # that a restart trusts over the revision committed with the data.
        self._revision_meta = revision_meta
        self._revision_meta_at = 0
        with env.begin(write=True) as txn:
            schema = txn.get(K_SCHEMA, db=self._dbs.meta)
            if schema is None:
                txn.put(K_SCHEMA, str(SCHEMA_VERSION).encode(), db=self._dbs.meta)
            elif int(schema) != SCHEMA_VERSION:
                raise RuntimeError(f"state machine schema {int(schema)} is not {SCHEMA_VERSION}")
        self._load()
        if revision_meta is not None:
            self._restore_revision_from_meta(revision_meta)

    def _load(self) -> None:
        # (raw state record, revision, compact revision) of the last view: reads decode
        # the record only when an apply changed it. The sentinel matches no record.
        self._view_revs: tuple[bytes | None, int, int] = (b"", 0, 0)
        with self._env.begin() as txn:
            raw = txn.get(K_STATE, db=self._dbs.meta)
            self._state = State.decode(raw) if raw else State()
            self._conf_state: bytes | None = txn.get(K_CONF_STATE, db=self._dbs.meta)
            self._dedup_index = {
                v[1 : 1 + v[0]]: U64.unpack(k)[0] for k, v in txn.cursor(self._dbs.dedup)
            }
            self._alarms = load_alarms(txn, self._dbs)

    @property
    def env(self) -> lmdb.Environment:
        return self._env

    def verify(self) -> int:
        """Full scan against the history digest (CorruptionError); records read."""
        with self._swap:
            return verify_state(self._env, self._dbs)

    # --- test mode: revision-from-unsynced-meta -------------------------------------------
    def _restore_revision_from_meta(self, path: Path) -> None:
        """MUTATION: take the revision counter from the side-car record, not from the
        State committed with the data. The record lags (it is flushed every
        REVISION_META_EVERY revisions), so after a crash the counter regresses and
        the next writes reuse revisions this replica already assigned; the applied
        index is right, so the replica silently diverges from the others."""
        try:
            meta = int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            meta = 0
        if meta:
            if meta != self._state.revision:
                log.warning(
                    "revision restored from side-car metadata",
                    meta=meta,
                    committed=self._state.revision,
                )
            self._state = self._state._replace(revision=meta)
        self._revision_meta_at = self._state.revision

    def _flush_revision_meta(self) -> None:
        """MUTATION: rewrite the side-car record only every REVISION_META_EVERY
        revisions, like a metadata checkpoint that is not part of the data's
        transaction (and is not fsynced either)."""
        assert self._revision_meta is not None
        rev = self._state.revision
        if rev - self._revision_meta_at >= REVISION_META_EVERY:
            self._revision_meta.write_text(f"{rev}\n")
            self._revision_meta_at = rev

    # --- apply ----------------------------------------------------------------------------
    def apply(
        self, batch: Sequence[tuple[int, bytes]], conf_state: bytes | None = None
    ) -> list[ApplyResult]:
        """Apply committed entries (raft index, command bytes) in one write transaction.

        Every committed index must be passed, in order and without gaps; pass b"" for
        entries that carry no command (a new leader's empty entry, conf changes). Each
        entry gets one result, in order. `conf_state` (opaque bytes from the node) is
        stored in the same transaction: the membership as of the batch's last index.
        Raises only lmdb errors (the disk is full, the data is damaged): then nothing
        of the batch was written and the caller may retry it.
        """
        with self._lock:
            return self._apply(batch, conf_state)

    def _apply(
        self, batch: Sequence[tuple[int, bytes]], conf_state: bytes | None
    ) -> list[ApplyResult]:
        st = self._state
        expected = st.applied_index + 1
        for index, _ in batch:
            if index >= expected:
                if index != expected:
                    raise ValueError(f"apply got index {index}, expected {expected}")
                expected += 1
        if expected == st.applied_index + 1 and conf_state is None:
            return [ApplyResult(i, st.revision, skipped=True) for i, _ in batch]
        if self.split_applied is not None:
            # MUTATION non-atomic-apply: a crash after this commit skips the batch forever.
            early_state = st._replace(applied_index=batch[-1][0])
            with self._env.begin(write=True) as early:
                early.put(K_STATE, early_state.encode(), db=self._dbs.meta)
            self.split_applied()
        try:
            w, new_state, results = self._write(batch, conf_state, st, nest_all=False)
        except NeedsNesting:
            log.warning("a command failed after writing: redoing its batch, every command nested")
            w, new_state, results = self._write(batch, conf_state, st, nest_all=True)
        self._state = new_state
        self._alarms = w.alarms
        if self._revision_meta is not None:
            self._flush_revision_meta()
        if conf_state is not None:
            self._conf_state = conf_state
        for rid in w.dedup_evicted:
            del self._dedup_index[rid]
        self._dedup_index.update(w.dedup_added)
        return results

    def _write(
        self,
        batch: Sequence[tuple[int, bytes]],
        conf_state: bytes | None,
        st: State,
        nest_all: bool,
    ) -> tuple[Writer, State, list[ApplyResult]]:
        results: list[ApplyResult] = []
        txn = self._env.begin(write=True)
        try:
            w = Writer(
                self._env,
                txn,
                self._dbs,
                st,
                quota=self.quota_bytes,
                max_key_size=self._max_key_size,
                dedup_capacity=self._dedup_capacity,
                dedup_index=self._dedup_index,
                alarms=self._alarms,
                nest_all=nest_all,
            )
            for index, data in batch:
                if index <= st.applied_index:
                    results.append(ApplyResult(index, st.revision, skipped=True))
                else:
                    results.append(w.apply_entry(index, data))
            if conf_state is not None:
                txn.put(K_CONF_STATE, conf_state, db=self._dbs.meta)
            new_state = w.state()
            txn.put(K_STATE, new_state.encode(), db=self._dbs.meta)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return w, new_state, results

    def set_conf_state(self, conf_state: bytes) -> None:
        """Record the membership without applying entries (e.g. at bootstrap)."""
        self.apply((), conf_state)

    # --- counters --------------------------------------------------------------------------
    def applied_index(self) -> int:
        return self._state.applied_index

    def current_revision(self) -> int:
        return self._state.revision

    def compact_revision(self) -> int:
        """The revision of the last compaction (reads below it fail); 0 = never."""
        return self._state.compact_revision

    def conf_state(self) -> bytes | None:
        """The conf state the node passed with the last applied batch that had one."""
        return self._conf_state

    def alarms(self) -> list[tuple[int, int]]:
        """Active alarms as (member id, alarm type), as of the last applied entry."""
        return sorted(self._alarms)

    @property
    def nospace(self) -> bool:
        """The NOSPACE alarm is raised: growing writes are refused everywhere."""
        return any(a == AlarmType.NOSPACE for _, a in self._alarms)

    def state(self) -> State:
        return self._state

    # --- reads ---------------------------------------------------------------------------
    @contextmanager
    def _txn(self) -> Iterator[lmdb.Transaction]:
        try:
            with self._swap, self._env.begin() as txn:
                yield txn
        except lmdb.Error as e:
            if is_corruption(e) and self.on_corruption is not None:
                self.on_corruption(e)  # the member stops: it must not answer from bad pages
            raise

    @contextmanager
    def _view(self) -> Iterator[View]:
        try:
            with self._swap, self._env.begin() as txn:
                raw = txn.get(K_STATE, db=self._dbs.meta)
                cached = self._view_revs  # one tuple: a to_thread reader may race us
                if cached[0] != raw:  # decode the state record once per apply batch
                    st = State.decode(raw) if raw else State()
                    cached = self._view_revs = (raw, st.revision, st.compact_revision)
                yield View(txn, self._dbs, cached[1], cached[2])
        except lmdb.Error as e:
            if is_corruption(e) and self.on_corruption is not None:
                self.on_corruption(e)
            raise

    def range(self, r: Range, budget: Budget = UNBOUNDED) -> RangeResponse:
        """etcd's Range, at `r.revision` (0 = current), within `budget`.

        Raises Compacted / FutureRevision / InvalidArgument / ResultTooLarge.
        """
        validate(r, self._max_key_size)
        with self._view() as v:
            return v.range(r, budget)

    def read_txn(self, t: Txn, budget: Budget = UNBOUNDED) -> TxnResponse:
        """Evaluate a txn that only reads (see View.read_txn) on the current state."""
        validate(t, self._max_key_size)
        with self._view() as v:
            resp = v.read_txn(t, budget)
            resp.revision = v.current
            return resp

    def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """The key's value at `revision` (0 = current), or None."""
        kvs = self.range(Range(key, revision=revision)).kvs
        return kvs[0] if kvs else None

    def state_digest(self) -> dict[str, int | str]:
        """SHA-256 over every live key-value and the revision, with the applied index.

        Read in one transaction, so the digest and the indices describe the same state:
        replicas that applied the same prefix must report the same digest (etcd's
        HashKV check at the end of a robustness test).
        """
        h = hashlib.sha256()
        with self._txn() as txn:
            raw = txn.get(K_STATE, db=self._dbs.meta)
            st = State.decode(raw) if raw else State()
            v = View(txn, self._dbs, st.revision, st.compact_revision)
            kvs = v.range(Range(b"\x00", b"\x00")).kvs
        h.update(U64.pack(st.revision))
        for kv in kvs:
            for part in (kv.key, kv.value):
                h.update(U64.pack(len(part)) + part)
            for n in (kv.create_revision, kv.mod_revision, kv.version, kv.lease):
                h.update(U64.pack(n))
        return {
            "hash": h.hexdigest(),
            "revision": st.revision,
            "compact_revision": st.compact_revision,
            "applied": st.applied_index,
            "keys": len(kvs),
        }

    def events(
        self,
        start_revision: int,
        key: bytes,
        range_end: bytes = b"",
        limit: int = 0,
        prev_kv: bool = False,
        max_bytes: int = 0,
    ) -> EventPage:
        """Historical changes for watch catch-up; see View.events.

        Raises Compacted if start_revision is below the compact revision.
        """
        with self._view() as v:
            return v.events(start_revision, key, range_end, limit, prev_kv, max_bytes)

    def lease_get(self, lease_id: int) -> LeaseInfo | None:
        """Granted TTL, last checkpointed remaining TTL and attached keys; None if absent."""
        if not 0 < lease_id <= leases.MAX_ID:
            return None
        with self._txn() as txn:
            return leases.read_lease(txn, self._dbs.lease, self._dbs.lease_keys, lease_id, True)

    def lease_list(self) -> list[int]:
        """Ids of all leases, ascending."""
        return [info.id for info in self.leases()]

    def leases(self) -> list[LeaseInfo]:
        """Every lease with its TTLs (no keys): what a new leader needs to run expiry."""
        with self._txn() as txn:
            return leases.all_leases(txn, self._dbs.lease)

    # --- space -------------------------------------------------------------------------
    def db_size(self) -> int:
        """Bytes of the LMDB file in use (high-water mark; only defragment shrinks it)."""
        with self._swap:
            return env_size(self._env)

    def db_size_in_use(self) -> int:
        """Bytes of pages holding live B-tree data (etcd's dbSizeInUse): the gap to
        db_size() is free pages LMDB will reuse, what a defragmentation would win."""
        with self._swap:
            env = self._env
            pages = 2 + _pages(env.stat())  # two meta pages + the main (names) tree
            with env.begin() as txn:
                for db in self._dbs.by_name().values():
                    pages += _pages(txn.stat(db))
            return pages * env.stat()["psize"]

    def space_used(self) -> int:
        """The logical size the quota is checked against (same on every replica)."""
        return self._state.space_used

    # --- snapshots -------------------------------------------------------------------------
    def snapshot_stream(self, chunk_size: int = DEFAULT_SNAPSHOT_CHUNK) -> SnapshotStream:
        """(applied_index, conf_state, chunks) of the whole state machine, consistent.

        The chunks come from one read transaction opened now; close the iterator if
        you stop before the end (see SnapshotChunks). While a stream is open the store
        will not defragment (the stream's reads would lose their file).
        """
        with self._swap:
            if self._defragmenting:
                raise Unavailable(Why.STORAGE)
            self._long_readers += 1
        try:
            stream = open_stream(self._env, self._dbs, chunk_size)
        except BaseException:
            self._reader_done()
            raise
        stream.chunks.on_close = self._reader_done
        return stream

    def _reader_done(self) -> None:
        with self._swap:
            self._long_readers -= 1

    def restore(self, chunks: Iterable[bytes]) -> None:
        """Atomically replace the whole state machine with a snapshot stream.

        One write transaction: on a truncated or corrupt stream (SnapshotError) nothing
        changes. Afterwards applied_index() is the snapshot's index.
        """
        with self._lock:
            txn = self._env.begin(write=True)
            try:
                restore_into(txn, self._dbs, chunks)
                txn.commit()
            except BaseException:
                txn.abort()
                raise
            # The log is about to drop everything the snapshot covers: this commit
            # must not be the one a machine crash undoes (metasync is off; env.py).
            self._env.sync(True)
            self._load()
            if self._revision_meta is not None:
                # A snapshot replaces the whole state: the side-car follows it.
                self._revision_meta.write_text(f"{self._state.revision}\n")
                self._revision_meta_at = self._state.revision

    def sync(self) -> None:
        """Make every applied commit durable. Applies commit without syncing the meta
        page (env.py), so a machine crash may undo the last one, which the log replays;
        call this before the log drops entries the state is supposed to hold."""
        self._env.sync(True)

    def reopen(self) -> None:
        """Close and reopen the environment (LMDB refuses every transaction after a
        failed meta-page write, e.g. on a full disk, until it is reopened)."""
        with self._lock, self._swap:
            env = self._env
            path, map_size = Path(env.path()), env.info()["map_size"]
            flags = env.flags()
            env.close()
            self._env = open_env(path, map_size, sync=flags["sync"], metasync=flags["metasync"])
            self._dbs = Dbs(self._env)
            self._load()

    # --- defragmentation ---------------------------------------------------------------------
    def defragment(self, wait_readers: float = 10.0) -> tuple[int, int]:
        """Rewrite the environment compactly and swap it in; (size before, size after).

        LMDB reuses freed pages but never shrinks its file: after a compaction only a
        rewrite returns the space (etcd's defragment). Applies wait meanwhile; reads go
        on against the old file until the instant of the swap.
        """
        with self._lock:
            with self._swap:
                self._defragmenting = True
            try:
                deadline = time.monotonic() + wait_readers
                while self._long_readers and time.monotonic() < deadline:
                    time.sleep(0.05)
                if self._long_readers:
                    raise Unavailable(Why.STORAGE)
                return self._rewrite()
            finally:
                with self._swap:
                    self._defragmenting = False

    def _rewrite(self) -> tuple[int, int]:
        env = self._env
        path = Path(env.path())
        before = env_size(env)
        map_size = env.info()["map_size"]
        flags = env.flags()
        fresh = path.with_name(path.name + ".defrag")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        env.copy(str(fresh), compact=True)
        with self._swap:
            env.close()
            old = path.with_name(path.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(fresh, path)
            self._env = open_env(path, map_size, sync=flags["sync"], metasync=flags["metasync"])
            self._dbs = Dbs(self._env)
        shutil.rmtree(old, ignore_errors=True)
        after = env_size(self._env)
        log.info("defragmented the state machine", before=before, after=after)
        return before, after


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
