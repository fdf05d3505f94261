"""LogStore: MemoryStorage semantics on LMDB, group commit, and restart recovery."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from raftkv.raft.messages import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raftkv.raft.storage import CompactedError, UnavailableError
from raftkv.storage import codec
from raftkv.storage.env import MiB, open_env
from raftkv.storage.logstore import LogStore


def ents(lo: int, hi: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, bytes([i % 256]) * size) for i in range(lo, hi)]


def reopen(env: lmdb.Environment, path: Path) -> tuple[lmdb.Environment, LogStore]:
    env.close()
    e = open_env(path, map_size=256 * MiB)
    return e, LogStore(e)


def test_fresh_store_is_empty(env: lmdb.Environment) -> None:
    s = LogStore(env)
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)
    assert s.initial_state() == (HardState(), ConfState())
    assert s.entries(1, 1) == []
    assert s.snapshot() == Snapshot()
    with pytest.raises(UnavailableError):
        s.term(1)
    with pytest.raises(UnavailableError):
        s.entries(1, 2)
    with pytest.raises(CompactedError):
        s.entries(0, 1)


def test_append_read_and_term(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 11, term=2))
    assert (s.first_index(), s.last_index()) == (1, 10)
    assert s.entries(3, 6) == ents(3, 6, term=2)
    assert [s.term(i) for i in range(11)] == [0] + [2] * 10
    conf = Entry(2, 11, EntryType.CONF_CHANGE, b"\x00" * 9)
    s.append([conf])
    assert s.entries(11, 12) == [conf]


def test_entries_max_bytes_keeps_at_least_one(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 11, size=100))  # each entry is 124 bytes by Entry.size()
    assert len(s.entries(1, 11, max_bytes=1)) == 1
    assert len(s.entries(1, 11, max_bytes=124 * 3)) == 3
    assert len(s.entries(1, 11, max_bytes=124 * 3 + 10)) == 3
    assert len(s.entries(1, 11, max_bytes=10**9)) == 10


def test_append_truncates_conflicting_suffix(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 11, term=1))
    s.append(ents(6, 8, term=3))
    assert s.last_index() == 7
    assert [s.term(i) for i in range(1, 8)] == [1] * 5 + [3] * 2
    with pytest.raises(UnavailableError):
        s.entries(1, 9)
    # Re-appending an older prefix also cuts everything after it.
    s.append(ents(2, 3, term=1))
    assert s.last_index() == 2


def test_append_with_gap_is_rejected_and_writes_nothing(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 4))
    with pytest.raises(ValueError, match="missing log entry"):
        s.save(HardState(5, 1, 3), ents(6, 8))
    assert s.last_index() == 3
    assert s.initial_state()[0] == HardState()
    with pytest.raises(ValueError, match="contiguous"):
        s.append([Entry(1, 4), Entry(1, 6)])
    assert s.last_index() == 3


def test_append_below_first_index_is_trimmed(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 11))
    s.compact(5)
    s.append(ents(1, 4, term=9))  # entirely compacted: ignored
    assert (s.first_index(), s.last_index(), s.term(5)) == (6, 10, 1)
    s.append(ents(3, 8, term=9))  # trimmed to 6..7, which truncates 8..10
    assert (s.first_index(), s.last_index()) == (6, 7)
    assert [s.term(i) for i in (5, 6, 7)] == [1, 9, 9]


def test_compact(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 6, term=1) + ents(6, 11, term=2))
    s.compact(7)
    assert (s.first_index(), s.last_index(), s.term(7)) == (8, 10, 2)
    with pytest.raises(CompactedError):
        s.term(6)
    with pytest.raises(CompactedError):
        s.entries(7, 9)
    assert s.entries(8, 11) == ents(8, 11, term=2)
    s.compact(3)  # already compacted: no-op
    assert s.first_index() == 8
    with pytest.raises(UnavailableError):
        s.compact(11)
    s.compact(10)
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 2)
    assert s.entries(11, 11) == []


def test_apply_snapshot_replaces_the_log(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 21))
    cs = ConfState(frozenset({1, 2, 3}), frozenset({4}))
    snap = Snapshot(SnapshotMeta(15, 4, cs))
    s.apply_snapshot(snap)
    assert (s.first_index(), s.last_index(), s.term(15)) == (16, 15, 4)
    assert s.snapshot() == snap
    assert s.initial_state() == (HardState(), cs)
    assert s.conf_state() == cs
    # An older snapshot is ignored.
    s.apply_snapshot(Snapshot(SnapshotMeta(10, 3, ConfState())))
    assert s.snapshot() == snap
    s.append(ents(16, 18, term=4))
    assert s.entries(16, 18) == ents(16, 18, term=4)


def test_save_is_snapshot_then_entries_then_hard_state(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 5))
    snap = Snapshot(SnapshotMeta(10, 2, ConfState(frozenset({1}))))
    hs = HardState(term=3, vote=1, commit=12)
    s.save(hs, ents(9, 14, term=3), snap)  # entries <= 10 are covered by the snapshot
    assert (s.first_index(), s.last_index()) == (11, 13)
    assert s.term(10) == 2
    assert s.entries(11, 14) == ents(11, 14, term=3)
    assert s.initial_state() == (hs, snap.meta.conf_state)


def test_create_snapshot_and_set_snapshot_meta(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.append(ents(1, 11, term=2))
    cs = ConfState(frozenset({1, 2}))
    snap = s.create_snapshot(5, cs, b"state")
    assert snap == Snapshot(SnapshotMeta(5, 2, cs), b"state")
    assert s.snapshot() == snap
    assert s.create_snapshot(4, ConfState(), b"older") == snap  # not newer: unchanged
    assert s.first_index() == 1  # creating a snapshot does not compact
    meta = SnapshotMeta(8, 2, ConfState(frozenset({1, 2, 3})))
    assert s.set_snapshot_meta(meta) == Snapshot(meta)
    assert s.snapshot() == Snapshot(meta)  # data of the older snapshot is not carried over
    with pytest.raises(UnavailableError):
        s.create_snapshot(11, cs)


def test_large_snapshot_data_is_refused(env: lmdb.Environment) -> None:
    s = LogStore(env, max_inline_snapshot=1024)
    with pytest.raises(ValueError, match="too large"):
        s.apply_snapshot(Snapshot(SnapshotMeta(3, 1), b"x" * 2048))
    assert s.snapshot() == Snapshot()


def test_restart_recovers_everything(env: lmdb.Environment, env_path: Path) -> None:
    s = LogStore(env)
    s.append(ents(1, 3001, term=1))  # more than the in-memory term cache holds
    s.append(ents(2990, 2995, term=2))
    s.compact(100)
    cs = ConfState(frozenset({1, 2, 3}))
    s.create_snapshot(50 + 60, cs, b"abc")
    hs = HardState(7, 2, 2994)
    s.set_hard_state(hs)
    env, s2 = reopen(env, env_path)
    try:
        assert (s2.first_index(), s2.last_index()) == (101, 2994)
        assert s2.term(100) == 1 and s2.term(10 + 100) == 1 and s2.term(2994) == 2
        assert s2.entries(101, 2995) == ents(101, 2990) + ents(2990, 2995, term=2)
        assert s2.initial_state() == (hs, cs)
        assert s2.snapshot() == Snapshot(SnapshotMeta(110, 1, cs), b"abc")
    finally:
        env.close()


def test_snapshot_survives_restart(env: lmdb.Environment, env_path: Path) -> None:
    s = LogStore(env)
    s.append(ents(1, 5))
    snap = Snapshot(SnapshotMeta(40, 6, ConfState(frozenset({2}), frozenset({3}))))
    s.apply_snapshot(snap)
    env, s2 = reopen(env, env_path)
    try:
        assert (s2.first_index(), s2.last_index(), s2.term(40)) == (41, 40, 6)
        assert s2.snapshot() == snap
    finally:
        env.close()


def test_entry_encoding_round_trips() -> None:
    for e in (Entry(0, 0), Entry(2**63, 2**64 - 1, EntryType.CONF_CHANGE, b"\x00\xff" * 100)):
        assert codec.decode_entry(codec.encode_entry(e)) == e
    meta = SnapshotMeta(9, 3, ConfState(frozenset({5, 1}), frozenset({7})))
    assert codec.decode_snapshot_meta(codec.encode_snapshot_meta(meta)) == meta
    # Equal conf states encode identically whatever the set iteration order.
    assert codec.encode_conf_state(ConfState(frozenset({3, 1, 2}))) == codec.encode_conf_state(
        ConfState(frozenset({1, 2, 3}))
    )


def test_save_is_one_fsync_per_call(env: lmdb.Environment) -> None:
    """Group commit: a Ready with many entries is one LMDB transaction."""
    s = LogStore(env)
    before = env.info()["last_txnid"]
    s.save(HardState(1, 1, 0), ents(1, 501), None)
    assert env.info()["last_txnid"] == before + 1


def test_reopen_in_place_keeps_everything(env: lmdb.Environment) -> None:
    s = LogStore(env)
    s.save(HardState(2, 1, 5), ents(1, 6, term=2))
    s.compact(2)
    used = s.used_bytes()
    assert used > 0
    path = Path(env.path())
    s.reopen()
    try:
        assert s.env is not env and Path(s.env.path()) == path
        assert (s.first_index(), s.last_index(), s.hard_state()) == (3, 5, HardState(2, 1, 5))
        assert s.entries(3, 6) == ents(3, 6, term=2)
        s.append(ents(6, 8, term=2))
        assert s.verify() == 5 and s.used_bytes() >= used
    finally:
        s.env.close()
