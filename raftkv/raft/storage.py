"""The core's read-only view of durable Raft state, and an in-memory implementation.

The core never writes storage itself: writes leave the core in a `Ready` and the
driver persists them (then calls `advance`). The core only *reads* stable entries
through this protocol. `MemoryStorage` is what the simulator uses; the LMDB store in
`raftkv.storage` implements the same protocol plus the same write methods.
"""

from __future__ import annotations

from typing import Protocol

from raftkv.raft.messages import ConfState, Entry, HardState, Snapshot, SnapshotMeta


class CompactedError(Exception):
    """The requested index is at or below the snapshot: the log no longer has it."""


class UnavailableError(Exception):
    """The requested index is past the last stored entry."""


class LogStorage(Protocol):
    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in [lo, hi); at least one if any exist, then capped by max_bytes."""
        ...

    def term(self, index: int) -> int: ...

    def first_index(self) -> int:
        """Index of the first entry still in the log (snapshot index + 1)."""
        ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot: ...


def limit_size(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """Keep a prefix of entries under max_bytes, but always at least one entry."""
    if max_bytes is None or not entries:
        return entries
    total = 0
    for i, e in enumerate(entries):
        total += e.size()
        if total > max_bytes and i > 0:
            return entries[:i]
    return entries


class MemoryStorage:
    """A LogStorage kept in memory, with the write methods the driver needs.

    `ents[0]` is a dummy entry holding the snapshot's index and term, as in etcd, so
    `term(snapshot_index)` still answers after compaction.
    """

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.conf_state = ConfState()
        self.snap = Snapshot()
        self.ents: list[Entry] = [Entry(0, 0)]

    # --- LogStorage ---------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state, self.conf_state

    def first_index(self) -> int:
        return self.ents[0].index + 1

    def last_index(self) -> int:
        return self.ents[0].index + len(self.ents) - 1

    def term(self, index: int) -> int:
        offset = self.ents[0].index
        if index < offset:
            raise CompactedError(index)
        if index - offset >= len(self.ents):
            raise UnavailableError(index)
        return self.ents[index - offset].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self.ents[0].index
        if lo <= offset:
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        return limit_size(self.ents[lo - offset : hi - offset], max_bytes)

    def snapshot(self) -> Snapshot:
        return self.snap

    # --- writes (driven by Ready) --------------------------------------------
    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def append(self, entries: list[Entry] | tuple[Entry, ...]) -> None:
        """Append, truncating any conflicting suffix first (entries are contiguous)."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        offset = entries[0].index - self.ents[0].index
        if offset > len(self.ents):
            raise ValueError(f"missing log entry before {entries[0].index}")
        self.ents = self.ents[:offset] + list(entries)

    def apply_snapshot(self, snap: Snapshot) -> None:
        if snap.meta.index <= self.snap.meta.index:
            return
        self.snap = snap
        self.conf_state = snap.meta.conf_state
        self.ents = [Entry(snap.meta.term, snap.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the applied state at `index` (the app made `data`)."""
        if index <= self.snap.meta.index:
            return self.snap
        snap = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        self.snap = snap
        # A restart resumes from this snapshot, so its membership is the starting one.
        self.conf_state = conf_state
        return snap

    def compact(self, index: int) -> None:
        """Drop entries up to and including `index` (keep it as the dummy entry)."""
        offset = self.ents[0].index
        if index <= offset:
            return
        if index > self.last_index():
            raise UnavailableError(index)
        self.ents = self.ents[index - offset :]
        self.ents[0] = Entry(self.ents[0].term, self.ents[0].index)
