"""etcd's exact wording and gRPC codes for the errors the state machine returns.

The store answers typed errors only; the etcd face (`etcd_status`) owns the text and
the code. Clients of etcd match on these strings, so each storage error is produced by
a real store here and checked against what etcd 3.4 says for it.
"""

from __future__ import annotations

import pytest

from raftkv.errors import RaftkvError
from raftkv.server.etcd.errors import GrpcStatus, etcd_status
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Command,
    Compact,
    DeleteRange,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Range,
    Txn,
)
from raftkv.storage.leases import MAX_LEASE_TTL
from raftkv.storage.mvcc import MvccStore
from tests.storage.helpers import Driver

S = GrpcStatus
MVCC = "etcdserver: mvcc: "


def refusal(drv: Driver, cmd: Command) -> RaftkvError:
    err = drv.one(cmd).error
    assert err is not None, cmd
    return err


@pytest.mark.parametrize(
    ("cmd", "code", "message"),
    [
        (Put(b"", b"v"), S.INVALID_ARGUMENT, "etcdserver: key is not provided"),
        (Put(b"k", b"v", ignore_value=True), S.INVALID_ARGUMENT, "etcdserver: value is provided"),
        (
            Put(b"k", lease=5, ignore_lease=True),
            S.INVALID_ARGUMENT,
            "etcdserver: lease is provided",
        ),
        (Put(b"nope", ignore_value=True), S.INVALID_ARGUMENT, "etcdserver: key not found"),
        (
            Txn((), (Put(b"a", b"1"), DeleteRange(b"a")), ()),
            S.INVALID_ARGUMENT,
            "etcdserver: duplicate key given in txn request",
        ),
        (Put(b"k", lease=4660), S.NOT_FOUND, "etcdserver: requested lease not found"),
        (LeaseRevoke(4660), S.NOT_FOUND, "etcdserver: requested lease not found"),
        (LeaseGrant(30, 7), S.FAILED_PRECONDITION, "etcdserver: lease already exists"),
        (LeaseGrant(MAX_LEASE_TTL + 1), S.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
        (Compact(1), S.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
        (Compact(99), S.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
        (
            Txn((), (Range(b"k", revision=99),), ()),
            S.OUT_OF_RANGE,
            "etcdserver: mvcc: required revision is a future revision",
        ),
    ],
)
def test_apply_errors_in_etcds_words(
    drv: Driver, cmd: Command, code: GrpcStatus, message: str
) -> None:
    drv.batch(LeaseGrant(30, 7), Put(b"k", b"v"), Put(b"k", b"w"), Compact(2))
    assert etcd_status(refusal(drv, cmd)) == (code, message)


def test_read_errors_in_etcds_words(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"k", b"1"), Put(b"k", b"2"), Compact(3))
    cases = [
        (Range(b"k", revision=2), S.OUT_OF_RANGE, MVCC + "required revision has been compacted"),
        (Range(b"k", revision=9), S.OUT_OF_RANGE, MVCC + "required revision is a future revision"),
        (Range(b""), S.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    ]
    for r, code, message in cases:
        with pytest.raises(RaftkvError) as e:
            store.range(r)
        assert etcd_status(e.value) == (code, message)


def test_nospace_in_etcds_words(drv: Driver) -> None:
    drv.ok(Alarm(1, AlarmType.NOSPACE, True))
    for cmd in (Put(b"k", b"v"), LeaseGrant(10), Txn((), (), (Put(b"k", b"v"),))):
        assert etcd_status(refusal(drv, cmd)) == (
            S.RESOURCE_EXHAUSTED,
            "etcdserver: mvcc: database space exceeded",
        )
