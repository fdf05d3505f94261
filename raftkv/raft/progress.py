"""The leader's view of each follower's log, and the flow-control window.

A follower's progress is in one of three states (etcd-io/raft tracker/):
PROBE sends one append per heartbeat interval until the follower's match is found;
REPLICATE streams appends optimistically, bounded by `Inflights`;
SNAPSHOT waits for an InstallSnapshot to land before appending again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """A window of in-flight append messages, capped by count and by bytes."""

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes  # 0 = unlimited
        self._items: deque[tuple[int, int]] = deque()  # (last index, bytes)
        self.bytes = 0

    def add(self, index: int, size: int) -> None:
        self._items.append((index, size))
        self.bytes += size

    def free_le(self, index: int) -> None:
        """Free every message whose last index is <= index (acknowledged)."""
        while self._items and self._items[0][0] <= index:
            _, size = self._items.popleft()
            self.bytes -= size

    def free_first(self) -> None:
        if self._items:
            self.free_le(self._items[0][0])

    def full(self) -> bool:
        if len(self._items) >= self.max_count:
            return True
        return bool(self.max_bytes) and self.bytes >= self.max_bytes

    def count(self) -> int:
        return len(self._items)

    def reset(self) -> None:
        self._items.clear()
        self.bytes = 0


@dataclass
class Progress:
    match: int
    next: int
    inflights: Inflights
    is_learner: bool = False
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    pending_snapshot: int = 0
    snapshot_ticks: int = 0  # ticks spent waiting in SNAPSHOT state
    recent_active: bool = False
    extra: dict[str, int] = field(default_factory=dict)

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_ticks = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, n: int) -> bool:
        """An append up to n was acknowledged. Returns whether match moved."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        self.next = max(self.next, n + 1)
        return updated

    def optimistic_update(self, n: int) -> None:
        self.next = n + 1

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """A rejection for the append after `rejected`; back `next` off. False if stale."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale rejection
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # not a response to our latest probe
        self.next = max(min(rejected, match_hint + 1), 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True
