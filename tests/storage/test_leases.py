"""Leases: grant, attach, detach, revoke, checkpoints, deterministic ids."""

from __future__ import annotations

from pathlib import Path

import lmdb

from raftkv.errors import Invalid, InvalidArgument, LeaseExists, LeaseNotFound, LeaseTTLTooLarge
from raftkv.storage.commands import (
    DeleteRange,
    LeaseCheckpoint,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Txn,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.leases import MAX_LEASE_TTL, derive_lease_id
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import EventType, LeaseGrantResponse, LeaseInfo, LeaseRevokeResponse
from tests.storage.helpers import Driver


def test_grant_with_explicit_id_and_duplicates(drv: Driver, store: MvccStore) -> None:
    assert drv.ok(LeaseGrant(30, 4660)) == LeaseGrantResponse(1, 4660, 30)
    res = drv.one(LeaseGrant(30, 4660))
    assert res.error == LeaseExists(4660)  # etcd's wording: test_error_wording.py
    assert (res.response, res.revision) == (None, 1)
    assert store.lease_get(4660) == LeaseInfo(4660, 30, 0, ())
    assert store.lease_get(1) is None


def test_grant_limits(drv: Driver) -> None:
    assert drv.one(LeaseGrant(MAX_LEASE_TTL + 1)).error == LeaseTTLTooLarge(MAX_LEASE_TTL + 1)
    assert drv.one(LeaseGrant(-1)).error == InvalidArgument(Invalid.NEGATIVE_TTL)
    assert drv.one(LeaseGrant(10, -5)).error == InvalidArgument(Invalid.LEASE_ID_RANGE)
    assert drv.one(LeaseRevoke(-5)).error == InvalidArgument(Invalid.LEASE_ID_RANGE)
    assert drv.one(Put(b"k", lease=-5)).error == InvalidArgument(Invalid.LEASE_ID_RANGE)
    assert drv.one(Put(b"k", lease=2**63)).error == InvalidArgument(Invalid.LEASE_ID_RANGE)
    assert drv.one(LeaseRevoke(2**63 - 1)).error == LeaseNotFound(2**63 - 1)
    assert drv.ok(LeaseGrant(MAX_LEASE_TTL, 1)).ttl == MAX_LEASE_TTL


def test_derived_ids_are_deterministic(tmp_path: Path) -> None:
    """Two replicas applying the same entries pick the same ids, and never collide."""
    ids = []
    for name in ("r1", "r2"):
        env = open_env(tmp_path / name, map_size=64 * MiB)
        try:
            d = Driver(MvccStore(env, quota_bytes=16 * MiB))
            taken = derive_lease_id(3, lambda _i: False)
            got = [r.response.id for r in d.batch(LeaseGrant(10), LeaseGrant(10, taken))]
            got.append(d.ok(LeaseGrant(10)).id)  # index 3 would be `taken`: probes past it
            ids.append(got)
        finally:
            env.close()
    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3 and all(0 < i < 2**63 for i in ids[0])
    assert ids[0][2] == ids[0][1] + 1


def test_attach_move_and_detach(drv: Driver, store: MvccStore) -> None:
    drv.batch(LeaseGrant(10, 1), LeaseGrant(10, 2))
    drv.batch(Put(b"a", b"", lease=1), Put(b"b", b"", lease=1), Put(b"c", b"", lease=1))
    assert store.lease_get(1).keys == (b"a", b"b", b"c")
    drv.ok(Put(b"a", b"", lease=2))  # moves to another lease
    drv.ok(Put(b"b", b""))  # no lease: detached
    drv.ok(DeleteRange(b"c"))  # deleted: detached
    assert store.lease_get(1).keys == ()
    assert store.lease_get(2).keys == (b"a",)
    assert store.get(b"a").lease == 2 and store.get(b"b").lease == 0


def test_put_with_unknown_lease_writes_nothing(drv: Driver, store: MvccStore) -> None:
    res = drv.one(Put(b"x", b"v", lease=4660))
    assert res.error == LeaseNotFound(4660)
    assert (store.get(b"x"), store.current_revision(), res.events) == (None, 1, [])


def test_revoke_deletes_attached_keys_in_one_revision(drv: Driver, store: MvccStore) -> None:
    drv.ok(LeaseGrant(30, 4660))
    drv.batch(Put(b"leased2", b"v", lease=4660), Put(b"leased1", b"v", lease=4660))
    drv.ok(Put(b"free", b"v"))
    res = drv.one(LeaseRevoke(4660))
    assert res.response == LeaseRevokeResponse(5)
    assert [(e.type, e.kv.key, e.revision) for e in res.events] == [
        (EventType.DELETE, b"leased1", 5),
        (EventType.DELETE, b"leased2", 5),
    ]
    assert [kv.key for kv in store.range(Range(b"\x00", b"\x00")).kvs] == [b"free"]
    assert store.lease_get(4660) is None and store.lease_list() == []
    assert drv.one(LeaseRevoke(4660)).error == LeaseNotFound(4660)
    assert drv.one(Put(b"x", b"v", lease=4660)).error == LeaseNotFound(4660)


def test_revoke_without_keys_keeps_the_revision(drv: Driver, store: MvccStore) -> None:
    drv.ok(LeaseGrant(30, 9))
    res = drv.one(LeaseRevoke(9))
    assert (res.response, res.events, store.current_revision()) == (LeaseRevokeResponse(1), [], 1)


def test_txn_put_attaches_to_lease(drv: Driver, store: MvccStore) -> None:
    drv.ok(LeaseGrant(30, 3))
    drv.ok(Txn((), (Put(b"a", b"", lease=3), Put(b"b", b"", lease=3)), ()))
    assert store.lease_get(3).keys == (b"a", b"b")


def test_checkpoints_and_listing(drv: Driver, store: MvccStore) -> None:
    drv.batch(LeaseGrant(60, 5), LeaseGrant(30, 2))
    drv.ok(LeaseCheckpoint(((5, 41), (77, 3), (2, -4))))  # unknown ids are ignored
    assert store.leases() == [LeaseInfo(2, 30, 0), LeaseInfo(5, 60, 41)]
    # Out-of-range ids are skipped and remaining TTLs clamped, never an error.
    drv.ok(LeaseCheckpoint(((-1, 5), (0, 5), (2**63 - 1, 5), (5, MAX_LEASE_TTL * 2))))
    assert store.lease_get(5).remaining_ttl == MAX_LEASE_TTL
    assert store.lease_list() == [2, 5]


def test_leases_survive_restart(env: lmdb.Environment, env_path: Path) -> None:
    d = Driver(MvccStore(env, quota_bytes=16 * MiB))
    d.batch(LeaseGrant(60, 5), Put(b"k", b"", lease=5), LeaseCheckpoint(((5, 12),)))
    env.close()
    env2 = open_env(env_path, map_size=256 * MiB)
    try:
        assert MvccStore(env2, quota_bytes=16 * MiB).lease_get(5) == LeaseInfo(5, 60, 12, (b"k",))
    finally:
        env2.close()
