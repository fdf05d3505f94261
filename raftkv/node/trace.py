"""Where a write's time goes: per-request timestamps through the write path.

Off unless the member runs with RAFTKV_TRACE=1 (the `make bench-trace` tool sets it,
together with test mode so that /debug/trace can hand the marks out). When off, the
node holds None and every hook is one attribute test.

Marks are taken on every member, with the member's monotonic clock:

    by request id:  proposed  (node.propose handed the entry to Raft)
                    resolved  (the proposer's coroutine resumed with the result)
    by log index:   appended  (the entry went into a Persist effect)
                    persisted (that effect's LMDB commit returned)
                    committed (this member learned the entry is committed: for the
                               leader, the ack that made a quorum; for a follower,
                               the append that carried the new commit index)
                    apply_start / applied (the Apply effect holding the entry)

The apply links a request id to its index, so one record per request can be built
(`records()`); the breakdown tool turns them into phase durations. Bounded: the oldest
marks are dropped past `capacity`, so a forgotten RAFTKV_TRACE costs memory only up to
a fixed size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

CAPACITY = 50_000


def from_env() -> WriteTrace | None:
    return WriteTrace() if os.environ.get("RAFTKV_TRACE") == "1" else None


class WriteTrace:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._by_rid: dict[bytes, dict[str, Any]] = {}
        self._by_index: dict[int, dict[str, float]] = {}

    @staticmethod
    def _bound(d: dict[Any, Any], capacity: int) -> None:
        while len(d) > capacity:
            del d[next(iter(d))]

    def request(self, rid: bytes, point: str) -> None:
        rec = self._by_rid.get(rid)
        if rec is None:
            rec = self._by_rid[rid] = {}
            self._bound(self._by_rid, self.capacity)
        rec.setdefault(point, time.monotonic())

    def entries(self, indexes: Iterable[int], point: str, at: float | None = None) -> None:
        t = time.monotonic() if at is None else at
        for i in indexes:
            rec = self._by_index.get(i)
            if rec is None:
                rec = self._by_index[i] = {}
            rec.setdefault(point, t)
        self._bound(self._by_index, self.capacity)

    def link(self, rid: bytes, index: int) -> None:
        rec = self._by_rid.get(rid)
        if rec is not None:
            rec.setdefault("index", index)

    def records(self) -> list[dict[str, Any]]:
        """One dict per traced request: its marks merged with its entry's marks."""
        out = []
        for rid, rec in self._by_rid.items():
            merged = dict(rec)
            index = rec.get("index")
            if index is not None:
                merged.update(self._by_index.get(index, {}))
            merged["rid"] = rid.hex()
            out.append(merged)
        return out

    def entry_marks(self) -> dict[int, dict[str, float]]:
        """Marks by log index (the leader's, joined with a follower's request records
        by the breakdown tool: members on one machine share CLOCK_MONOTONIC)."""
        return {i: dict(m) for i, m in self._by_index.items()}

    def clear(self) -> None:
        self._by_rid.clear()
        self._by_index.clear()
