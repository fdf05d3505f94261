"""Quota and the NOSPACE alarm: growing writes are refused, everything else keeps working.

The quota is checked against the logical size every replica computes from the commands
it applied, so a refusal is the same NoSpace on every replica whatever LMDB's file
does. Once the NOSPACE alarm is raised (a replicated `Alarm` command) every growing
write is refused on every member until an `Alarm(..., active=False)` clears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from raftkv.errors import NoSpace, Unavailable, Why
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Command,
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseRevoke,
    Noop,
    Put,
    Range,
    Txn,
)
from raftkv.storage.env import GiB, MiB, open_env
from raftkv.storage.mvcc import MvccStore, map_size_for
from raftkv.storage.results import AlarmResponse
from tests.storage.helpers import Driver

KiB = 1024
NOSPACE = int(AlarmType.NOSPACE)


def test_nospace_then_delete_and_compact_make_room(tmp_path: Path) -> None:
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        store = MvccStore(env, quota_bytes=256 * KiB)
        d = Driver(store)
        lease = d.ok(LeaseGrant(60, 7)).id
        value = b"v" * 1024
        i = 0
        while True:
            r = d.one(Put(b"k%04d" % i, value, lease=lease if i % 2 else 0))
            if r.error is not None:
                break
            i += 1
            assert i < 1000, "quota never hit"
        assert r.error == NoSpace()  # etcd's wording: test_error_wording.py
        rev = store.current_revision()
        assert store.get(b"k%04d" % i) is None and r.events == []
        assert store.space_used() <= store.quota_bytes
        # Fill the rest with the smallest growing write there is (a lease).
        for _ in range(100):
            if d.one(LeaseGrant(60)).error is not None:
                break
        # Now every write that grows data is refused...
        assert d.one(LeaseGrant(60)).error == NoSpace()
        assert d.one(Put(b"k", b"")).error == NoSpace()
        put_txn = Txn((), (Range(b"k0000"), Put(b"new", value)), ())
        assert d.one(put_txn).error == NoSpace()
        # ...while reads, read-only txns, deletes, revokes and compaction still work.
        assert store.range(Range(b"k", b"l", count_only=True)).count == i
        cmp = Compare(b"k0000", CompareTarget.VERSION, CompareResult.EQUAL, 1)
        assert d.ok(Txn((cmp,), (Range(b"k0000"),), (Put(b"new", value),))).succeeded
        d.ok(LeaseRevoke(lease))
        assert d.ok(DeleteRange(b"k", b"l")).deleted == (i + 1) // 2
        assert store.current_revision() == rev + 2
        assert d.one(Put(b"again", value)).error == NoSpace()  # tombstones take room too
        d.ok(Compact(store.current_revision()))
        assert store.space_used() < 64 * KiB
        assert d.one(Put(b"again", value)).error is None
        assert d.one(LeaseGrant(60)).error is None
        assert store.alarms() == []  # the quota alone raises no alarm: the leader does
    finally:
        env.close()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[MvccStore]]:
    envs = [open_env(tmp_path / f"r{i}", map_size=64 * MiB) for i in range(2)]
    try:
        yield [MvccStore(e, quota_bytes=192 * KiB) for e in envs]
    finally:
        for e in envs:
            e.close()


def test_quota_refusals_are_the_same_on_every_replica(replicas: list[MvccStore]) -> None:
    """One replica's file grows (a long reader pins the pages LMDB would reuse), the
    other's does not; the logical size, hence every NoSpace, is the same on both."""
    a, b = replicas
    reader = a.snapshot_stream()  # pins a's pages from now on
    try:
        index = 0
        refused = 0
        for round_ in range(60):
            batch: list[Command] = [
                Put(b"k%03d" % ((round_ * 8 + j) % 300), b"x" * (500 + 97 * ((round_ + j) % 9)))
                for j in range(8)
            ]
            if round_ % 5 == 4:
                batch.append(Compact(max(2, a.current_revision() - 10)))
            entries = [(index + 1 + i, c.encode()) for i, c in enumerate(batch)]
            index += len(entries)
            ra, rb = a.apply(entries), b.apply(entries)
            assert ra == rb
            refused += sum(r.error == NoSpace() for r in ra)
            assert a.state_digest() == b.state_digest() and a.state() == b.state()
        assert refused > 0, "quota never reached"
        assert a.db_size() > b.db_size()  # the physical sizes differ...
        assert a.space_used() == b.space_used() <= a.quota_bytes  # ...the logical ones do not
    finally:
        reader.chunks.close()


def test_quota_must_be_positive_and_the_map_is_far_larger(tmp_path: Path) -> None:
    env = open_env(tmp_path, map_size=32 * MiB)
    try:
        for bad in (0, -1):
            with pytest.raises(ValueError, match="positive"):
                MvccStore(env, quota_bytes=bad)
        MvccStore(env, quota_bytes=1)
    finally:
        env.close()
    assert map_size_for(2 * GiB) == 16 * GiB
    assert map_size_for(8 * GiB) == 32 * GiB
    assert map_size_for(1 * MiB) == 16 * GiB


# --- the NOSPACE alarm -----------------------------------------------------------------------


def test_nospace_alarm_blocks_growing_writes_until_cleared(drv: Driver, store: MvccStore) -> None:
    drv.batch(LeaseGrant(60, 1), LeaseGrant(60, 2), Put(b"a", b"1", lease=1), Put(b"b", b"1"))
    rev = store.current_revision()  # 3
    raised = drv.one(Alarm(5, AlarmType.NOSPACE, True))
    assert raised.response == AlarmResponse(rev, [(5, NOSPACE)])
    assert store.alarms() == [(5, NOSPACE)] and raised.events == []
    assert store.space_used() < store.quota_bytes  # far below the quota: the alarm decides

    read_only = Txn((Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL, b"1"),),
                    (Range(b"a"),), (DeleteRange(b"zz"),))  # fmt: skip
    refused = [
        Put(b"new", b"v"),
        Put(b"a", b"1"),  # an overwrite with the same size grows the history too
        Put(b"a", ignore_value=True),
        LeaseGrant(60),
        LeaseGrant(60, 99),
        Txn((), (Put(b"new", b"v"),), ()),
        # etcd refuses a txn holding a put in any branch, taken or not, at any depth.
        Txn((), (Range(b"a"),), (Put(b"new", b"v"),)),
        Txn((), (Txn((), (), (Put(b"new", b"v"),)),), ()),
    ]
    for cmd in refused:
        res = drv.one(cmd)
        assert res.error == NoSpace(), cmd
        assert (res.response, res.events, res.revision) == (None, [], rev), cmd
    assert store.current_revision() == rev and store.lease_list() == [1, 2]

    # Reads, read-only and delete-only txns, deletes, revokes, checkpoints, compaction.
    assert store.get(b"a").value == b"1"
    assert drv.ok(read_only).succeeded
    assert drv.ok(Txn((), (DeleteRange(b"b"),), ())).responses[0].deleted == 1
    assert drv.ok(LeaseRevoke(1)).revision == rev + 2  # deletes the attached key a
    assert store.get(b"a") is None
    drv.ok(LeaseCheckpoint(((2, 30),)))
    drv.ok(Compact(store.current_revision()))
    drv.ok(Noop())
    assert drv.ok(Range(b"a")).count == 0

    # Another member's alarm, and other alarm types, are separate entries.
    drv.ok(Alarm(6, AlarmType.NOSPACE, True))
    drv.ok(Alarm(5, AlarmType.CORRUPT, True))
    assert store.alarms() == [(5, NOSPACE), (5, int(AlarmType.CORRUPT)), (6, NOSPACE)]
    drv.ok(Alarm(5, AlarmType.NOSPACE, False))
    assert drv.one(Put(b"new", b"v")).error == NoSpace()  # member 6's alarm still holds
    cleared = drv.ok(Alarm(6, AlarmType.NOSPACE, False))
    assert cleared.alarms == [(5, int(AlarmType.CORRUPT))]  # CORRUPT does not block writes

    assert drv.ok(Put(b"new", b"v")).revision == rev + 3
    assert drv.ok(LeaseGrant(60, 99)).id == 99
    assert drv.ok(Txn((), (Range(b"a"),), (Put(b"x", b"v"),))).succeeded


def test_alarm_edge_cases(drv: Driver, store: MvccStore) -> None:
    # Clearing an alarm that is not raised, raising one twice, and AlarmType.NONE
    # (etcd's "no alarm", never stored) are all harmless no-ops with a response.
    assert drv.ok(Alarm(1, AlarmType.NOSPACE, False)).alarms == []
    drv.ok(Alarm(1, AlarmType.NOSPACE, True))
    assert drv.ok(Alarm(1, AlarmType.NOSPACE, True)).alarms == [(1, NOSPACE)]
    assert drv.ok(Alarm(1, AlarmType.NONE, True)).alarms == [(1, NOSPACE)]
    # A member id outside the table's 64-bit key field changes nothing (see below).
    drv.one(Alarm(-1, AlarmType.NOSPACE, True))
    drv.one(Alarm(-(1 << 63), AlarmType.NOSPACE, True))
    assert store.alarms() == [(1, NOSPACE)]
    assert store.current_revision() == 1


@pytest.mark.parametrize("member_id", [-1, -(1 << 63)])
def test_alarm_with_an_out_of_range_member_id_is_ignored(drv: Driver, member_id: int) -> None:
    res = drv.one(Alarm(member_id, AlarmType.NOSPACE, True))
    assert res.error is None and res.response == AlarmResponse(1, [])


def test_alarm_is_in_the_state_and_the_snapshot(
    drv: Driver, store: MvccStore, env: lmdb.Environment, env_path: Path, tmp_path: Path
) -> None:
    drv.ok(Alarm(3, AlarmType.NOSPACE, True))
    assert drv.one(Put(b"k", b"v")).error == NoSpace()
    # A snapshot carries the alarm table: a member restored from it refuses too.
    copy_env = open_env(tmp_path / "copy", map_size=64 * MiB)
    try:
        copy = MvccStore(copy_env, quota_bytes=64 * MiB)
        copy.restore(store.snapshot_stream().chunks)
        assert copy.alarms() == [(3, NOSPACE)]
        assert Driver(copy).one(Put(b"k", b"v")).error == NoSpace()
    finally:
        copy_env.close()
    # It survives a restart, and clearing it after the restart works.
    env.close()
    env2 = open_env(env_path, map_size=64 * MiB)
    try:
        again = MvccStore(env2, quota_bytes=64 * MiB)
        assert again.alarms() == [(3, NOSPACE)]
        d = Driver(again)
        assert d.one(Put(b"k", b"v")).error == NoSpace()
        d.ok(Alarm(3, AlarmType.NOSPACE, False))
        assert d.one(Put(b"k", b"v")).error is None
    finally:
        env2.close()


def test_alarm_takes_effect_at_the_next_entry_of_the_batch(drv: Driver, store: MvccStore) -> None:
    res = drv.batch(
        Put(b"before", b""),
        Alarm(1, AlarmType.NOSPACE, True),
        Put(b"during", b""),
        DeleteRange(b"before"),
        Alarm(1, AlarmType.NOSPACE, False),
        Put(b"after", b""),
    )
    assert [r.error for r in res] == [None, None, NoSpace(), None, None, None]
    assert [kv.key for kv in store.range(Range(b"\x00", b"\x00")).kvs] == [b"after"]
    assert store.alarms() == []


# --- defragmentation -------------------------------------------------------------------------


def test_defragment_returns_space_and_keeps_the_state(tmp_path: Path) -> None:
    env = open_env(tmp_path / "state", map_size=64 * MiB)
    store = MvccStore(env, quota_bytes=32 * MiB)
    try:
        d = Driver(store)
        for i in range(40):
            d.ok(Put(b"k%02d" % (i % 4), b"x" * 50_000, client_id=b"c%d" % i))
        d.ok(Alarm(1, AlarmType.NOSPACE, True))
        d.ok(Compact(store.current_revision()))
        before = (store.state_digest(), store.state(), store.alarms(), store.space_used())
        used = store.db_size_in_use()
        assert used < store.db_size()  # compaction freed pages LMDB will only reuse
        size_before, size_after = store.defragment()
        assert size_after < size_before and size_after <= used + 64 * KiB
        assert (store.state_digest(), store.state(), store.alarms(), store.space_used()) == before
        assert store.verify() > 0
        # The store keeps working on the new file: dedup, alarm, writes.
        assert d.one(Put(b"k03", b"x" * 50_000, client_id=b"c39")).duplicate
        d.ok(Alarm(1, AlarmType.NOSPACE, False))
        assert d.ok(Put(b"after", b"defrag")).revision == store.current_revision()
    finally:
        store.env.close()


def test_defragment_waits_for_snapshot_streams(drv: Driver, store: MvccStore) -> None:
    drv.ok(Put(b"k", b"v"))
    stream = store.snapshot_stream(64)
    try:
        with pytest.raises(Unavailable) as e:
            store.defragment(wait_readers=0.1)
        assert e.value.why == Why.STORAGE
    finally:
        stream.chunks.close()
    store.defragment()
    assert store.get(b"k").value == b"v"  # type: ignore[union-attr]
