"""Quota: NOSPACE for growing writes, everything else keeps working, never MapFullError."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkv.storage.commands import (
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Txn,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.errors import GrpcCode, NoSpaceError
from raftkv.storage.mvcc import MvccStore
from tests.storage.helpers import Driver

KiB = 1024


def test_nospace_then_delete_and_compact_make_room(tmp_path: Path) -> None:
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        store = MvccStore(env, quota_bytes=256 * KiB, reserve_bytes=16 * MiB)
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
        err = r.error
        assert err == NoSpaceError()
        assert (err.message, err.grpc_code) == (
            "etcdserver: mvcc: database space exceeded",
            GrpcCode.RESOURCE_EXHAUSTED,
        )
        rev = store.current_revision()
        assert store.get(b"k%04d" % i) is None and r.events == []
        assert store.space_used() <= store.quota_bytes
        # Fill the rest with the smallest growing write there is (a lease).
        for _ in range(100):
            if d.one(LeaseGrant(60)).error is not None:
                break
        # Now every write that grows data is refused...
        assert d.one(LeaseGrant(60)).error == NoSpaceError()
        assert d.one(Put(b"k", b"")).error == NoSpaceError()
        put_txn = Txn((), (Range(b"k0000"), Put(b"new", value)), ())
        assert d.one(put_txn).error == NoSpaceError()
        # ...while reads, read-only txns, deletes, revokes and compaction still work.
        assert store.range(b"k", b"l", count_only=True).count == i
        cmp = Compare(b"k0000", CompareTarget.VERSION, CompareResult.EQUAL, 1)
        assert d.ok(Txn((cmp,), (Range(b"k0000"),), (Put(b"new", value),))).succeeded
        d.ok(LeaseRevoke(lease))
        assert d.ok(DeleteRange(b"k", b"l")).deleted == (i + 1) // 2
        assert store.current_revision() == rev + 2
        assert d.one(Put(b"again", value)).error == NoSpaceError()  # tombstones take room too
        d.ok(Compact(store.current_revision()))
        assert store.space_used() < 64 * KiB
        assert d.one(Put(b"again", value)).error is None
        assert d.one(LeaseGrant(60)).error is None
    finally:
        env.close()


def test_physical_map_exhaustion_becomes_nospace(tmp_path: Path) -> None:
    """A reader pinning old pages makes LMDB's file grow although the logical size
    does not: the store must answer NOSPACE instead of raising MapFullError, and
    recover once the reader is gone."""
    env = open_env(tmp_path, map_size=8 * MiB)
    try:
        store = MvccStore(env, quota_bytes=6 * MiB, reserve_bytes=1 * MiB)
        d = Driver(store)
        big = b"x" * (64 * KiB)
        d.ok(Put(b"k", big))
        reader = store.snapshot_stream()  # holds a read transaction open
        errors = []
        for _ in range(400):
            res = d.batch(Put(b"k", big), Compact(store.current_revision()))
            if res[0].error is not None:
                errors.append(res[0].error)
                break
        assert errors == [NoSpaceError()], "physical limit never reached"
        assert store.space_used() < store.quota_bytes  # the logical quota was not the reason
        assert store.get(b"k").value == big
        reader.chunks.close()
        # Pages pinned by the reader become reusable after a couple of commits.
        results = [d.one(Put(b"k", big)) for _ in range(3)]
        assert results[-1].error is None
    finally:
        env.close()


def test_quota_must_fit_in_the_map(tmp_path: Path) -> None:
    env = open_env(tmp_path, map_size=32 * MiB)
    try:
        with pytest.raises(ValueError, match="must fit"):
            MvccStore(env, quota_bytes=32 * MiB)
        MvccStore(env, quota_bytes=16 * MiB)
    finally:
        env.close()


def test_map_full_mid_batch_is_retried_as_nospace(tmp_path: Path) -> None:
    """With no reserve the pre-check cannot help: LMDB raises MapFullError inside the
    batch. The whole batch is redone with growing writes refused, so the other
    commands of the batch still apply and nothing is half-written."""
    env = open_env(tmp_path, map_size=4 * MiB)
    try:
        store = MvccStore(env, quota_bytes=4 * MiB, reserve_bytes=0)
        d = Driver(store)
        big = b"x" * (64 * KiB)
        for i in range(200):
            put, delete = d.batch(Put(b"big%03d" % i, big), DeleteRange(b"big000"))
            if put.error is not None:
                break
        assert put.error == NoSpaceError(), "map never filled"
        assert i > 1 and delete.error is None and delete.response.deleted == 0
        assert store.get(b"big%03d" % i) is None
        assert store.applied_index() == d.index
        assert store.range(b"big", b"bih", count_only=True).count == i - 1
    finally:
        env.close()
