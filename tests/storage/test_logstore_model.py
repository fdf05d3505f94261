"""LogStore against MemoryStorage: random writes, restarts, and every read compared."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from raftkv.raft.messages import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raftkv.raft.storage import CompactedError, MemoryStorage, UnavailableError
from raftkv.storage.env import MiB, open_env
from raftkv.storage.logstore import LogStore

node_ids = st.frozensets(st.integers(1, 5), max_size=3)


def outcome(fn, *args):  # type: ignore[no-untyped-def]
    """Result or exception type, so both stores can be compared on failures too."""
    try:
        return ("ok", fn(*args))
    except (CompactedError, UnavailableError, ValueError) as e:
        return ("err", type(e))


class LogStoreVsMemory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="logstore-model-"))
        self.env = open_env(self.dir, map_size=64 * MiB)
        self.store = LogStore(self.env)
        self.model = MemoryStorage()
        self.term = 1

    def teardown(self) -> None:
        self.env.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(
        back=st.integers(-2, 6),
        count=st.integers(0, 6),
        bump=st.booleans(),
        size=st.integers(0, 40),
        conf=st.booleans(),
    )
    def append(self, back: int, count: int, bump: bool, size: int, conf: bool) -> None:
        if bump:
            self.term += 1
        start = self.model.last_index() + 1 - back
        start = max(start, 1)
        es = [
            Entry(self.term, i, EntryType.CONF_CHANGE if conf else EntryType.NORMAL, b"d" * size)
            for i in range(start, start + count)
        ]
        assert outcome(self.store.append, es) == outcome(self.model.append, es)

    @rule(gap=st.integers(2, 4))
    def append_with_gap_fails(self, gap: int) -> None:
        es = [Entry(self.term, self.model.last_index() + gap)]
        assert outcome(self.store.append, es)[0] == "err"
        assert outcome(self.model.append, es)[0] == "err"

    @rule(delta=st.integers(-3, 3))
    def compact(self, delta: int) -> None:
        index = max(0, self.model.last_index() - delta)
        assert outcome(self.store.compact, index) == outcome(self.model.compact, index)

    @rule(ahead=st.integers(-3, 8), voters=node_ids, learners=node_ids)
    def apply_snapshot(self, ahead: int, voters: frozenset[int], learners: frozenset[int]) -> None:
        self.term += 1
        index = max(1, self.model.last_index() + ahead)
        snap = Snapshot(SnapshotMeta(index, self.term, ConfState(voters, learners)))
        self.store.apply_snapshot(snap)
        self.model.apply_snapshot(snap)

    @rule(back=st.integers(0, 5), voters=node_ids, data=st.binary(max_size=16))
    def create_snapshot(self, back: int, voters: frozenset[int], data: bytes) -> None:
        index = self.model.last_index() - back
        cs = ConfState(voters)
        got = outcome(self.store.create_snapshot, index, cs, data)
        assert got == outcome(self.model.create_snapshot, index, cs, data)

    @rule(vote=st.integers(0, 5), commit=st.integers(0, 50))
    def set_hard_state(self, vote: int, commit: int) -> None:
        hs = HardState(self.term, vote, commit)
        self.store.set_hard_state(hs)
        self.model.set_hard_state(hs)

    @rule()
    def restart(self) -> None:
        self.env.close()
        self.env = open_env(self.dir, map_size=64 * MiB)
        self.store = LogStore(self.env)

    @rule()
    def reopen_in_place(self) -> None:
        """What the node does after a failed meta-page write (e.g. a full disk)."""
        self.store.reopen()
        self.env = self.store.env

    @precondition(lambda self: self.model.last_index() >= self.model.first_index())
    @rule(data=st.data())
    def read_range_with_cap(self, data: st.DataObject) -> None:
        lo = data.draw(st.integers(self.model.first_index(), self.model.last_index()))
        hi = data.draw(st.integers(lo, self.model.last_index() + 1))
        cap = data.draw(st.none() | st.integers(0, 400))
        assert self.store.entries(lo, hi, cap) == self.model.entries(lo, hi, cap)

    @invariant()
    def same_reads(self) -> None:
        s, m = self.store, self.model
        assert (s.first_index(), s.last_index()) == (m.first_index(), m.last_index())
        first, last = m.first_index(), m.last_index()
        for i in range(first - 2, last + 2):
            assert outcome(s.term, i) == outcome(m.term, i)
        assert s.entries(first, last + 1) == m.entries(first, last + 1)
        assert outcome(s.entries, first - 1, last + 1) == outcome(m.entries, first - 1, last + 1)
        assert outcome(s.entries, first, last + 2) == outcome(m.entries, first, last + 2)
        assert s.snapshot() == m.snapshot()
        assert s.verify() == last - first + 1  # every stored entry's checksum
        # MemoryStorage only updates its conf state in apply_snapshot; the LMDB store
        # reports the conf state of its latest snapshot, as etcd's storage does.
        assert s.initial_state() == (m.hard_state, m.snapshot().meta.conf_state)


LogStoreVsMemory.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogStoreVsMemory = LogStoreVsMemory.TestCase
