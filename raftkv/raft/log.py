"""The Raft log as the core sees it: durable entries in storage plus an unstable tail.

Entries the core appended but the driver has not yet persisted live in `Unstable`;
they move to "stable" only when `advance()` reports the Ready that carried them was
written. A snapshot received from the leader also waits in `Unstable` until persisted.
"""

from __future__ import annotations

from raftkv.raft.messages import Entry, Snapshot
from raftkv.raft.storage import CompactedError, LogStorage, UnavailableError, limit_size


class LogSafetyError(AssertionError):
    """An operation would rewrite committed history: a bug, never a normal outcome."""


class Unstable:
    def __init__(self, offset: int) -> None:
        self.offset = offset  # index of entries[0]
        self.entries: list[Entry] = []
        self.snapshot: Snapshot | None = None

    def maybe_first_index(self) -> int | None:
        return self.snapshot.meta.index + 1 if self.snapshot else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        return self.snapshot.meta.index if self.snapshot else None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot and self.snapshot.meta.index == i:
                return self.snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or i > last:
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, i: int, t: int) -> bool:
        """Entries up to i (with term t) are durable; drop them if still ours."""
        term = self.maybe_term(i)
        if term is None or term != t or i < self.offset:
            return False
        self.entries = self.entries[i + 1 - self.offset :]
        self.offset = i + 1
        return True

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot and self.snapshot.meta.index == i:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.meta.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: list[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces everything unstable (and some stable entries: storage truncates).
            self.offset = after
            self.entries = list(ents)
        else:
            self.entries = self.entries[: after - self.offset] + list(ents)


class RaftLog:
    def __init__(self, storage: LogStorage) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applied = first - 1
        # The last index known to be on disk: what this node may count as replicated.
        self.persisted = last

    # --- indexes and terms --------------------------------------------------
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def term(self, i: int) -> int:
        """Term of entry i; 0 if i is outside the log (compacted or not yet present)."""
        dummy = self.first_index() - 1
        if i < dummy or i > self.last_index():
            return 0
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        try:
            return self.storage.term(i)
        except (CompactedError, UnavailableError):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, t: int) -> bool:
        if i < self.first_index() - 1 or i > self.last_index():
            return False
        return self.term(i) == t

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """The election restriction (Raft 5.4.1): is a candidate's log at least ours?"""
        return term > self.last_term() or (
            term == self.last_term() and last_index >= self.last_index()
        )

    # --- reading entries ----------------------------------------------------
    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi). Raises CompactedError if lo was compacted away."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise CompactedError(lo)
        if hi > self.last_index() + 1:
            raise UnavailableError(hi)
        ents: list[Entry] = []
        off = self.unstable.offset
        if lo < off:
            ents = self.storage.entries(lo, min(hi, off), max_bytes)
            if len(ents) < min(hi, off) - lo:
                return ents  # capped by size
        if hi > off:
            unstable = self.unstable.entries[max(lo, off) - off : hi - off]
            ents = ents + unstable if ents else list(unstable)
        return limit_size(ents, max_bytes)

    def entries_from(self, i: int, max_bytes: int | None = None) -> list[Entry]:
        if i > self.last_index():
            return []
        return self.slice(i, self.last_index() + 1, max_bytes)

    def next_committed_entries(self, max_bytes: int | None = None) -> list[Entry]:
        lo = max(self.applied + 1, self.first_index())
        if self.committed + 1 > lo:
            return self.slice(lo, self.committed + 1, max_bytes)
        return []

    def has_next_committed_entries(self) -> bool:
        return self.committed > max(self.applied, self.first_index() - 1)

    # --- mutation -----------------------------------------------------------
    def find_conflict(self, ents: tuple[Entry, ...] | list[Entry]) -> int:
        """First index whose term disagrees with ours, or that we lack; 0 if none."""
        for e in ents:
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index <= `index` whose term is <= `term` (fast log backtracking)."""
        index = min(index, self.last_index())
        while index > 0:
            t = self.term(index)
            if t <= term or (t == 0 and index < self.first_index()):
                break
            index -= 1
        return index

    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        after = ents[0].index - 1
        if after < self.committed:
            raise LogSafetyError(f"append after {after} would overwrite commit {self.committed}")
        self.unstable.truncate_and_append(ents)
        if self.persisted > after:
            self.persisted = after  # the overwritten suffix no longer counts as durable
        return self.last_index()

    def maybe_append(
        self,
        index: int,
        log_term: int,
        committed: int,
        ents: tuple[Entry, ...],
        *,
        truncate_always: bool = False,
    ) -> int | None:
        """AppendEntries receiver logic. Returns the last new index, or None to reject."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        if truncate_always and ents:
            # Planted bug: drop whatever follows `index`, even matching entries.
            self.append(list(ents))
        else:
            ci = self.find_conflict(ents)
            if ci:
                if ci <= self.committed:
                    raise LogSafetyError(f"conflict at {ci} <= committed {self.committed}")
                self.append(list(ents[ci - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, c: int) -> None:
        if c > self.committed:
            if c > self.last_index():
                raise LogSafetyError(f"commit {c} beyond last index {self.last_index()}")
            self.committed = c

    def maybe_commit(self, index: int, term: int, *, ignore_term: bool = False) -> bool:
        """Advance commit to `index` only if that entry is from the current term.

        Raft 5.4.2 (Figure 8): counting replicas of an older-term entry is unsafe.
        """
        if index > self.committed and (ignore_term or self.term(index) == term):
            self.commit_to(index)
            return True
        return False

    def applied_to(self, i: int) -> None:
        if i > self.applied:
            self.applied = i

    def stable_to(self, i: int, t: int) -> None:
        if self.unstable.stable_to(i, t):
            self.persisted = max(self.persisted, i)

    def stable_snap_to(self, i: int) -> None:
        self.unstable.stable_snap_to(i)
        self.persisted = max(self.persisted, i)

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.meta.index
        self.unstable.restore(snap)
