"""The MVCC state machine: etcd v3 key-value semantics on LMDB.

`MvccStore.apply()` takes committed Raft entries and applies them in ONE write
transaction together with the new applied index, so a crash mid-apply replays the
whole batch (entries at or below the stored applied index are skipped: exactly once).
Reads do not go through Raft; the node decides when a read is linearizable and then
calls `range()` here.

Determinism is the contract with the other replicas: given the same entries, every
replica returns the same results and ends in the same state. That is why lease ids
are derived from the Raft index, why the quota is checked against a logical size
computed from the applied commands rather than against LMDB's file (see layout.py),
and why nothing here reads a clock or a random source.

Threads: one thread applies (apply/restore/set_conf_state are serialised by a lock);
any number of threads may read concurrently, each read working on one LMDB snapshot.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import lmdb
import structlog

from raftkv.storage import leases
from raftkv.storage.commands import Range, SortOrder, SortTarget, validate
from raftkv.storage.env import GiB, MiB, env_size
from raftkv.storage.errors import StorageFullError
from raftkv.storage.layout import (
    K_CONF_STATE,
    K_SCHEMA,
    K_STATE,
    SCHEMA_VERSION,
    U64,
    Dbs,
    State,
)
from raftkv.storage.logstore import LOG_DB, RAFTMETA_DB
from raftkv.storage.results import ApplyResult, EventPage, KeyValue, LeaseInfo, RangeResponse
from raftkv.storage.snapshot import SnapshotStream, open_stream, restore_into
from raftkv.storage.view import View
from raftkv.storage.writer import Writer

log = structlog.get_logger(__name__)

DEFAULT_QUOTA = 2 * GiB  # etcd's default backend quota
DEFAULT_DEDUP_CAPACITY = 100_000
DEFAULT_SNAPSHOT_CHUNK = 1 * MiB
# Test mode's revision-from-unsynced-meta mutation only: how many revisions the
# side-car revision record may lag behind the data (a lazily flushed metadata file).
REVISION_META_EVERY = 32


class MvccStore:
    """etcd-style revisioned key-value store, leases and dedup table in one LMDB env.

    `quota_bytes` bounds the logical data size (NOSPACE beyond it). `reserve_bytes`
    is physical headroom kept free in the LMDB map for writes that must always work
    (deletes, revokes, compactions, the applied index itself); it defaults to 1/16 of
    the map, at least 16 MiB, and quota + reserve must fit in the map.
    """

    def __init__(
        self,
        env: lmdb.Environment,
        *,
        quota_bytes: int = DEFAULT_QUOTA,
        dedup_capacity: int = DEFAULT_DEDUP_CAPACITY,
        reserve_bytes: int | None = None,
        revision_meta: Path | None = None,
    ) -> None:
        map_size = env.info()["map_size"]
        reserve = max(16 * MiB, map_size // 16) if reserve_bytes is None else reserve_bytes
        if quota_bytes <= 0 or quota_bytes + reserve > map_size:
            raise ValueError(
                f"quota {quota_bytes} plus reserve {reserve} must fit in the LMDB map "
                f"({map_size} bytes); open the environment with a larger map_size"
            )
        self._env = env
        self._dbs = Dbs(env)
        # Every database in the shared environment, for db_size_in_use(). Opening the
        # log store's here (creating them if it has not yet) keeps all handle opening
        # at construction: LMDB forbids opening handles from concurrent transactions.
        self._all_dbs = [*self._dbs.by_name().values()] + [
            env.open_db(name) for name in (LOG_DB, RAFTMETA_DB)
        ]
        self._map_size = map_size
        self._reserve = reserve
        self.quota_bytes = quota_bytes
        self._dedup_capacity = dedup_capacity
        self._max_key_size = env.max_key_size()
        self._lock = threading.Lock()
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
        with self._env.begin() as txn:
            raw = txn.get(K_STATE, db=self._dbs.meta)
            self._state = State.decode(raw) if raw else State()
            self._conf_state: bytes | None = txn.get(K_CONF_STATE, db=self._dbs.meta)
            self._dedup_index = {
                v[1 : 1 + v[0]]: U64.unpack(k)[0] for k, v in txn.cursor(self._dbs.dedup)
            }

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
        Raises StorageFullError (fail-stop) only if LMDB's map is full even for a
        batch whose growing writes were all refused.
        """
        with self._lock:
            nospace = self._map_nearly_full()
            if nospace:
                log.warning("lmdb map nearly full: refusing growing writes", batch=len(batch))
            try:
                return self._apply(batch, conf_state, nospace)
            except lmdb.MapFullError:
                if nospace:
                    raise StorageFullError("LMDB map is full") from None
                log.error("lmdb map full mid-batch: retrying with growing writes refused")
            try:
                return self._apply(batch, conf_state, True)
            except lmdb.MapFullError:
                raise StorageFullError("LMDB map is full") from None

    def _map_nearly_full(self) -> bool:
        """Whether growing writes could push LMDB's map into MapFullError.

        The cheap test is the file's high-water mark. LMDB never lowers it, so once it
        is within the reserve of the map's end, growing writes are still safe only if
        they can reuse free pages: enough must be free, and no reader may be pinning
        the pages freed since it started (LMDB cannot reuse those, so every write
        would extend the file). This is a local safety net, not the quota: the quota
        is the deterministic logical size, checked per command.
        """
        env = self._env
        if self._map_size - env_size(env) >= self._reserve:
            return False
        env.reader_check()  # clear slots of dead reader processes
        if _old_readers(env):
            return True
        return self._map_size - self.db_size_in_use() < self._reserve

    def _apply(
        self, batch: Sequence[tuple[int, bytes]], conf_state: bytes | None, nospace: bool
    ) -> list[ApplyResult]:
        st = self._state
        expected = st.applied_index + 1
        for index, _ in batch:
            if index >= expected:
                if index != expected:
                    raise ValueError(f"apply got index {index}, expected {expected}")
                expected += 1
        results: list[ApplyResult] = []
        if expected == st.applied_index + 1 and conf_state is None:
            return [ApplyResult(i, st.revision, skipped=True) for i, _ in batch]
        if self.split_applied is not None:
            # MUTATION non-atomic-apply: a crash after this commit skips the batch forever.
            early_state = st._replace(applied_index=batch[-1][0])
            with self._env.begin(write=True) as early:
                early.put(K_STATE, early_state.encode(), db=self._dbs.meta)
            self.split_applied()
        txn = self._env.begin(write=True)
        try:
            w = Writer(
                txn,
                self._dbs,
                st,
                quota=self.quota_bytes,
                nospace=nospace,
                max_key_size=self._max_key_size,
                dedup_capacity=self._dedup_capacity,
                dedup_index=self._dedup_index,
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
        self._state = new_state
        if self._revision_meta is not None:
            self._flush_revision_meta()
        if conf_state is not None:
            self._conf_state = conf_state
        for rid in w.dedup_evicted:
            del self._dedup_index[rid]
        self._dedup_index.update(w.dedup_added)
        return results

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

    # --- reads ---------------------------------------------------------------------------
    @contextmanager
    def _view(self) -> Iterator[View]:
        with self._env.begin() as txn:
            raw = txn.get(K_STATE, db=self._dbs.meta)
            st = State.decode(raw) if raw else State()
            yield View(txn, self._dbs, st.revision, st.compact_revision)

    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        sort_order: SortOrder = SortOrder.NONE,
        sort_target: SortTarget = SortTarget.KEY,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> RangeResponse:
        """etcd's Range. `revision` 0 reads the current revision.

        Raises RevisionCompactedError / FutureRevisionError / BadRequestError.
        """
        r = Range(
            key,
            range_end,
            revision,
            limit,
            keys_only,
            count_only,
            sort_order,
            sort_target,
            min_mod_revision,
            max_mod_revision,
            min_create_revision,
            max_create_revision,
        )
        validate(r, self._max_key_size)
        with self._view() as v:
            return v.range(r)

    def state_digest(self) -> dict[str, int | str]:
        """SHA-256 over every live key-value and the revision, with the applied index.

        Read in one transaction, so the digest and the indices describe the same state:
        replicas that applied the same prefix must report the same digest (etcd's
        HashKV check at the end of a robustness test).
        """
        h = hashlib.sha256()
        with self._env.begin() as txn:
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

    def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """The key's value at `revision` (0 = current), or None."""
        kvs = self.range(key, revision=revision).kvs
        return kvs[0] if kvs else None

    def events(
        self,
        start_revision: int,
        key: bytes,
        range_end: bytes = b"",
        limit: int = 0,
        prev_kv: bool = False,
    ) -> EventPage:
        """Historical changes for watch catch-up; see View.events.

        Raises RevisionCompactedError if start_revision is below the compact revision.
        """
        with self._view() as v:
            return v.events(start_revision, key, range_end, limit, prev_kv)

    def lease_get(self, lease_id: int) -> LeaseInfo | None:
        """Granted TTL, last checkpointed remaining TTL and attached keys; None if absent."""
        with self._env.begin() as txn:
            return leases.read_lease(txn, self._dbs.lease, self._dbs.lease_keys, lease_id, True)

    def lease_list(self) -> list[int]:
        """Ids of all leases, ascending."""
        return [info.id for info in self.leases()]

    def leases(self) -> list[LeaseInfo]:
        """Every lease with its TTLs (no keys): what a new leader needs to run expiry."""
        with self._env.begin() as txn:
            return leases.all_leases(txn, self._dbs.lease)

    # --- space -------------------------------------------------------------------------
    def db_size(self) -> int:
        """Bytes of the LMDB file in use (high-water mark; LMDB never shrinks it)."""
        return env_size(self._env)

    def db_size_in_use(self) -> int:
        """Bytes of pages holding live B-tree data across the whole environment.

        The gap to db_size() is free pages LMDB will reuse (after compaction or
        deletes); like etcd's dbSizeInUse, it shows what a defragmentation would win.
        Counts the log store's databases too: they share the file and the map.
        """
        env = self._env
        pages = 2 + _pages(env.stat())  # two meta pages + the main (names) tree
        with env.begin() as txn:
            for db in self._all_dbs:
                pages += _pages(txn.stat(db))
        return pages * env.stat()["psize"]

    def space_used(self) -> int:
        """The logical size the quota is checked against (same on every replica)."""
        return self._state.space_used

    # --- snapshots -------------------------------------------------------------------------
    def snapshot_stream(self, chunk_size: int = DEFAULT_SNAPSHOT_CHUNK) -> SnapshotStream:
        """(applied_index, conf_state, chunks) of the whole state machine, consistent.

        The chunks come from one read transaction opened now; close the iterator if
        you stop before the end (see SnapshotChunks).
        """
        return open_stream(self._env, self._dbs, chunk_size)

    def restore(self, chunks: Iterable[bytes]) -> None:
        """Atomically replace the whole state machine with a snapshot stream.

        One write transaction: on a truncated or corrupt stream (SnapshotError) or a
        snapshot too big for the map (StorageFullError) nothing changes. Afterwards
        applied_index() is the snapshot's index.
        """
        with self._lock:
            txn = self._env.begin(write=True)
            try:
                restore_into(txn, self._dbs, chunks)
                txn.commit()
            except lmdb.MapFullError:
                txn.abort()
                raise StorageFullError("snapshot does not fit in the LMDB map") from None
            except BaseException:
                txn.abort()
                raise
            self._load()
            if self._revision_meta is not None:
                # A snapshot replaces the whole state: the side-car follows it.
                self._revision_meta.write_text(f"{self._state.revision}\n")
                self._revision_meta_at = self._state.revision


def _old_readers(env: lmdb.Environment) -> bool:
    """Is any read transaction older than the last commit (pinning freed pages)?"""
    last = env.info()["last_txnid"]
    for line in env.readers().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit() and int(fields[2]) < last:
            return True
    return False


def _pages(stat: dict[str, int]) -> int:
    return stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
