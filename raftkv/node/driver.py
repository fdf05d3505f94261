"""The Ready handling, as a sans-I/O object the node and the simulator both run.

The core (raft/) decides what to persist, send and apply; this driver decides in what
ORDER, which is where durability bugs live, and owns the bookkeeping around it: the
waiters of proposals and reads, the ReadIndex batching, the deferred hard state, and
the snapshot policy. It does no I/O: `process(ready)` is a generator that yields
effects, one at a time, and is sent back each effect's completion:

    gen = driver.process(core.ready())
    effect = next(gen)
    while True:
        outcome = execute(effect)          # the node: asyncio, sockets, LMDB threads
        effect = gen.send(outcome)         # the simulator: in-memory, same class

The order it yields (raft/core.py states the contract):

    RoleChanged?  Send(early)  Persist  Hook(after_persist_before_send)  Send(late)
    Apply → Hook(after_apply_before_ack) → Resolve(proposals, reads)   [core.advance]
    TakeSnapshot?

An executor may stop at any effect (a crash): nothing after it happened, and the
node restarts from what was persisted. The simulator crashes nodes exactly there and
checks that no message ever promised state that was not yet persisted.

`DriverBugs` plants ordering mistakes for the mutation suite and the simulator's
proof that its checks can fail.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Generator, Hashable
from dataclasses import dataclass, field
from typing import Any

from raftkv.raft import (
    ConfState,
    Entry,
    HardState,
    Message,
    ProposalDropped,
    Raft,
    Ready,
    Role,
    Snapshot,
)

Token = Hashable


# --- effects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoleChanged:
    lead: int
    role: Role
    term: int


@dataclass(frozen=True, slots=True)
class Send:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Persist:
    """Write snapshot meta, then entries, then hard state, durably, in one commit.
    Completion: None (the executor retries until it succeeds or stops the node)."""

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None


@dataclass(frozen=True, slots=True)
class Hook:
    """A named point between effects (test-mode failpoints live here)."""

    name: str


@dataclass(frozen=True, slots=True)
class Apply:
    """Apply committed entries in order. Completion: one `(request_id, result)` per
    entry (request_id None when the entry carries none)."""

    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Resolve:
    """Proposals that applied (token, result), and reads/index waits now servable."""

    proposals: tuple[tuple[Token, Any], ...]
    reads: tuple[Token, ...]


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """The state machine's applied state at `index` becomes the snapshot; the log may
    drop entries up to `compact_to` (0: keep everything)."""

    index: int
    term: int
    conf_state: ConfState
    compact_to: int


Effect = RoleChanged | Send | Persist | Hook | Apply | Resolve | TakeSnapshot


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class DriverBugs:
    """Planted ordering bugs (test mode / simulator only)."""

    send_before_persist: bool = False  # acks and votes leave before their state is durable
    keep_boot_term_vote: HardState | None = None  # persist this term/vote forever


@dataclass(frozen=True)
class DriverConfig:
    snapshot_count: int = 10_000  # snapshot every N applied entries...
    snapshot_bytes: int = 256 << 20  # ...or every N bytes of log appended
    snapshot_keep: int = 5_000  # entries kept behind a snapshot for slow followers
    read_expiry_ticks: int = 50  # forget a ReadIndex round nobody answered
    bugs: DriverBugs = field(default_factory=DriverBugs)


# --- the driver ------------------------------------------------------------------------


class Driver:
    def __init__(
        self, core: Raft, cfg: DriverConfig, *, applied: int, snapshot_index: int, node_id: int
    ) -> None:
        self.core = core
        self.cfg = cfg
        self.node_id = node_id
        self.applied = applied
        self.snapshot_index = snapshot_index
        self.lead = 0
        self.role = Role.FOLLOWER
        self.conf_state = core.conf
        self._deferred_hs: HardState | None = None
        self._log_bytes = 0  # bytes appended since the last snapshot
        self._proposals: dict[bytes, list[Token]] = {}
        self._read_pending: list[Token] = []
        self._read_batches: dict[bytes, tuple[int, list[Token]]] = {}
        self._read_ctx = itertools.count(1)
        self._index_waits: list[tuple[int, Token]] = []
        self._ticks = 0

    # --- inputs -------------------------------------------------------------------------
    def tick(self) -> None:
        self.core.tick()
        self._ticks += 1
        if self._read_batches and self._ticks % 10 == 0:
            limit = self._ticks - self.cfg.read_expiry_ticks
            for ctx in [c for c, (t, _) in self._read_batches.items() if t < limit]:
                del self._read_batches[ctx]

    def propose(self, data: bytes, request_id: bytes, token: Token) -> None:
        """Propose an entry whose apply answers `token`; ProposalDropped if refused."""
        self._proposals.setdefault(request_id, []).append(token)
        try:
            self.core.propose(data)
        except ProposalDropped:
            self.forget(request_id, token)
            raise

    def forget(self, request_id: bytes, token: Token) -> None:
        """The caller stopped waiting (timeout): drop its waiter."""
        waiters = self._proposals.get(request_id)
        if waiters is not None:
            if token in waiters:
                waiters.remove(token)
            if not waiters:
                del self._proposals[request_id]

    def read(self, token: Token) -> bool:
        """Queue a linearizable read; True if this is the first since the last flush
        (the executor then schedules `flush_reads`, so concurrent reads share a round)."""
        self._read_pending.append(token)
        return len(self._read_pending) == 1

    def flush_reads(self) -> list[Token]:
        """Start one ReadIndex round for every queued read; the tokens that failed
        (no leader) are returned."""
        batch, self._read_pending = self._read_pending, []
        if not batch:
            return []
        ctx = next(self._read_ctx).to_bytes(8, "big") + self.node_id.to_bytes(8, "big")
        try:
            self.core.read_index(ctx)
        except ProposalDropped:
            return batch
        self._read_batches[ctx] = (self._ticks, batch)
        return []

    def wait_applied(self, index: int, token: Token) -> bool:
        """Wait until `index` is applied; True if it already is."""
        if self.applied >= index:
            return True
        self._index_waits.append((index, token))
        return False

    @property
    def pending(self) -> int:
        return sum(len(v) for v in self._proposals.values())

    # --- the Ready --------------------------------------------------------------------
    def process(self, rd: Ready) -> Generator[Effect, Any, None]:
        ss = rd.soft_state
        if ss.lead != self.lead or ss.role != self.role:
            self.lead, self.role = ss.lead, ss.role
            yield RoleChanged(ss.lead, ss.role, self.core.term)
        # 0. A leader's appends and heartbeats leave before its own fsync.
        if rd.early_messages:
            yield Send(rd.early_messages)
        # 1. Persist. A change of the commit index alone is relearned from the leader
        # after a restart: it rides along with the next write that must be durable.
        hs = rd.hard_state
        if hs is not None and not rd.must_sync and not rd.entries and rd.snapshot is None:
            self._deferred_hs = hs
            hs = None
        sent = False
        if rd.snapshot is not None or rd.entries or hs is not None:
            hs = hs or self._deferred_hs
            self._deferred_hs = None
            bugs = self.cfg.bugs
            if bugs.send_before_persist and rd.messages:
                yield Send(rd.messages)  # PLANTED BUG: promises leave before the state
                sent = True
                yield Hook("after_send_before_persist")
            if hs is not None and bugs.keep_boot_term_vote is not None:
                boot = bugs.keep_boot_term_vote  # PLANTED BUG: term and vote never move
                hs = dataclasses.replace(hs, term=boot.term, vote=boot.vote)
            yield Persist(hs, rd.entries, rd.snapshot)
            self._log_bytes += sum(len(e.data) for e in rd.entries)
            yield Hook("after_persist_before_send")
        if rd.snapshot is not None:
            self.snapshot_index = rd.snapshot.meta.index
            self.applied = max(self.applied, rd.snapshot.meta.index)
            self.conf_state = rd.snapshot.meta.conf_state
            self._log_bytes = 0
        # 2. Only now the messages that promise durable state (acks, votes).
        if not sent and rd.messages:
            yield Send(rd.messages)
        # 3. Apply, then answer whoever waits on what applied.
        proposals: list[tuple[Token, Any]] = []
        if rd.committed_entries:
            outcomes = yield Apply(rd.committed_entries)
            yield Hook("after_apply_before_ack")
            self.applied = max(self.applied, rd.committed_entries[-1].index)
            for request_id, result in outcomes:
                if request_id is not None:
                    for token in self._proposals.pop(request_id, ()):
                        proposals.append((token, result))
        reads = self._release_reads(rd)
        if proposals or reads:
            yield Resolve(tuple(proposals), tuple(reads))
        self.core.advance(rd)
        self.conf_state = self.core.conf
        # 4. Snapshot policy: by entries applied, or by log bytes appended.
        snap = self._snapshot_due()
        if snap is not None:
            yield snap

    def _release_reads(self, rd: Ready) -> list[Token]:
        ready: list[Token] = []
        for rs in rd.read_states:
            entry = self._read_batches.pop(rs.context, None)
            if entry is None:
                continue
            for token in entry[1]:
                if self.applied >= rs.index:
                    ready.append(token)
                else:
                    self._index_waits.append((rs.index, token))
        if self._index_waits:
            keep = []
            for index, token in self._index_waits:
                if index <= self.applied:
                    ready.append(token)
                else:
                    keep.append((index, token))
            self._index_waits = keep
        return ready

    def _snapshot_due(self) -> TakeSnapshot | None:
        applied = self.applied
        by_count = applied - self.snapshot_index >= self.cfg.snapshot_count
        by_bytes = self._log_bytes >= self.cfg.snapshot_bytes
        if not (by_count or by_bytes) or applied <= self.snapshot_index:
            return None
        if applied > self.core.log.last_index():
            return None
        term = self.core.log.term(applied)
        self.snapshot_index = applied
        self._log_bytes = 0
        keep = self.cfg.snapshot_keep if by_count else min(self.cfg.snapshot_keep, 64)
        return TakeSnapshot(applied, term, self.core.conf, max(0, applied - keep))
