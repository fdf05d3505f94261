"""Apply is total: a command that fails leaves nothing behind and the batch goes on.

Every committed entry gets a result on every replica. A refusal, a read over the
budget the proposer stamped into a txn, or even a bug inside apply aborts just that
command (its nested LMDB transaction) and becomes its stored result; only local
storage failures (lmdb errors) escape `apply()`, and then nothing of the batch is
written. Reads outside apply are bounded by a `Budget` the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.errors import (
    FutureRevision,
    InternalError,
    Invalid,
    InvalidArgument,
    LeaseNotFound,
    RaftkvError,
    ResultTooLarge,
)
from raftkv.storage import writer as writer_mod
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Command,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    Noop,
    Put,
    Range,
    Txn,
    prefix_end,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.errors import is_full
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import RangeResponse, TxnResponse
from raftkv.storage.view import Budget
from tests.storage.helpers import Driver

ALL = (b"\x00", b"\x00")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Driver, Driver]]:
    """Two independent replicas (separate environments, different map sizes)."""
    envs = [open_env(tmp_path / "r1", 64 * MiB), open_env(tmp_path / "r2", 256 * MiB)]
    try:
        yield (
            Driver(MvccStore(envs[0], quota_bytes=16 * MiB)),
            Driver(MvccStore(envs[1], quota_bytes=16 * MiB)),
        )
    finally:
        for e in envs:
            e.close()


def both(pair: tuple[Driver, Driver], *cmds: Command | bytes) -> list[object]:
    """Apply one batch on both replicas; they must answer identically."""
    a, b = (d.batch(*cmds) for d in pair)
    assert a == b
    assert pair[0].store.state_digest() == pair[1].store.state_digest()
    assert pair[0].store.state() == pair[1].store.state()
    return a  # type: ignore[return-value]


def snapshot(store: MvccStore) -> tuple[object, ...]:
    return (
        store.range(Range(*ALL)),
        store.current_revision(),
        store.space_used(),
        store.state().hist_digest,
        store.events(1, *ALL, prev_kv=True),
        store.leases(),
    )


def test_a_txn_over_its_budget_writes_nothing_and_the_batch_goes_on(
    pair: tuple[Driver, Driver],
) -> None:
    both(pair, LeaseGrant(30, 7), *(Put(b"k/%d" % i, b"v" * 10) for i in range(5)))
    store = pair[0].store
    before = snapshot(store)
    scan = Range(b"k/", prefix_end(b"k/"))
    # The writes come first in the branch, the over-budget read last: all of it goes.
    by_keys = Txn((), (Put(b"new", b"x"), DeleteRange(b"k/0"), scan), (), max_range_keys=3)
    by_bytes = Txn((), (Put(b"new", b"x", lease=7), scan), (), max_range_bytes=20)
    by_compare = Txn(
        (Compare(b"k/", CompareTarget.VERSION, CompareResult.GREATER, 0, prefix_end(b"k/")),),
        (Put(b"new", b"x"),),
        (),
        max_range_keys=4,
    )
    fits = Txn((), (Put(b"after", b"y"), scan), (), max_range_keys=5, max_range_bytes=1000)
    res = both(pair, by_keys, Put(b"mid", b"m"), by_bytes, by_compare, fits)
    assert [r.error for r in res] == [  # type: ignore[attr-defined]
        ResultTooLarge("keys", 3),
        None,
        ResultTooLarge("bytes", 20),
        ResultTooLarge("keys", 4),
        None,
    ]
    for r in (res[0], res[2], res[3]):
        assert (r.response, r.events) == (None, [])  # type: ignore[attr-defined]
    assert [r.revision for r in res] == [6, 7, 7, 7, 8]  # type: ignore[attr-defined]
    # Nothing of the refused txns remains: no key, no tombstone, no lease attachment,
    # no history record (the space and the history digest only moved for the two puts).
    assert store.get(b"new") is None and store.get(b"k/0") is not None
    assert store.lease_get(7).keys == ()  # type: ignore[union-attr]
    assert [e.kv.key for e in store.events(before[1] + 1, *ALL).events] == [b"mid", b"after"]
    assert store.verify() > 0
    # The same reads fit without a budget, and the txn that fits saw its own put.
    assert isinstance(res[4].response, TxnResponse)  # type: ignore[attr-defined]
    assert res[4].response.responses[1].count == 5  # type: ignore[attr-defined]
    assert pair[0].ok(Txn((), (scan,), ())).responses[0].count == 5


def test_refusals_anywhere_in_a_batch_leave_the_others_alone(pair: tuple[Driver, Driver]) -> None:
    res = both(
        pair,
        Put(b"a", b"1"),
        Txn((), (Put(b"b", b"1"), Put(b"c", b"1", lease=404)), ()),
        Put(b"d", b"1"),
        Txn((), (Put(b"e", b"1"), Range(b"a", revision=99)), ()),
        b"\x00not a command",
        Put(b"f", b"1"),
    )
    errors = [type(r.error).__name__ if r.error else None for r in res]  # type: ignore[attr-defined]
    assert errors == [None, "LeaseNotFound", None, "FutureRevision", "InvalidArgument", None]
    assert res[1].error == LeaseNotFound(404)  # type: ignore[attr-defined]
    assert res[3].error == FutureRevision(3)  # type: ignore[attr-defined]
    keys = [kv.key for kv in pair[0].store.range(Range(*ALL)).kvs]
    assert keys == [b"a", b"d", b"f"]
    assert pair[0].store.current_revision() == 4


def test_a_bug_inside_apply_becomes_an_internal_error(
    pair: tuple[Driver, Driver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception half-way through a command (here: after its deletes were
    written) aborts that command only; every replica stores the same InternalError."""
    both(pair, Put(b"a", b"1"), Put(b"b", b"1"))
    original = writer_mod.Writer._delete

    def buggy(self: writer_mod.Writer, cmd: DeleteRange) -> list:  # type: ignore[type-arg]
        prevs = original(self, cmd)
        if cmd.range_end == b"\x00":
            raise ZeroDivisionError("bug")
        return prevs

    monkeypatch.setattr(writer_mod.Writer, "_delete", buggy)
    before = snapshot(pair[0].store)
    res = both(pair, DeleteRange(b"a", b"\x00"), Put(b"c", b"1"), DeleteRange(b"a"))
    assert res[0].error == InternalError("DeleteRange: ZeroDivisionError")  # type: ignore[attr-defined]
    assert (res[0].events, res[0].revision) == ([], 3)  # type: ignore[attr-defined]
    assert [r.error for r in res[1:]] == [None, None]  # type: ignore[attr-defined]
    store = pair[0].store
    assert [kv.key for kv in store.range(Range(*ALL)).kvs] == [b"b", b"c"]
    assert store.current_revision() == before[1] + 2  # type: ignore[operator]
    assert store.verify() > 0


def test_a_refusal_after_writing_in_the_fast_path_redoes_the_batch_nested(
    pair: tuple[Driver, Driver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simple commands run in the batch's own transaction because they check before
    they write; one that breaks that rule (refusing after a write) must still leave
    nothing behind: the batch is redone with every command in a nested transaction."""
    original = writer_mod.Writer.write_put

    def late_refusal(self: writer_mod.Writer, key: bytes, *a: object) -> None:
        original(self, key, *a)  # type: ignore[arg-type]
        if key == b"late":
            raise LeaseNotFound(7)

    monkeypatch.setattr(writer_mod.Writer, "write_put", late_refusal)
    res = both(pair, Put(b"a", b"1"), Put(b"late", b"x"), Put(b"b", b"1"))
    assert [r.error for r in res] == [None, LeaseNotFound(7), None]  # type: ignore[attr-defined]
    store = pair[0].store
    assert [kv.key for kv in store.range(Range(*ALL)).kvs] == [b"a", b"b"]
    assert store.current_revision() == 3 and store.verify() > 0


def test_lmdb_errors_escape_and_leave_nothing_of_the_batch(tmp_path: Path) -> None:
    """A full LMDB map is local storage trouble, not the entry's outcome: apply raises,
    nothing of the batch is written, and the store keeps working afterwards."""
    env = open_env(tmp_path, map_size=1 * MiB)
    try:
        store = MvccStore(env, quota_bytes=64 * MiB)  # the quota is not what stops it
        d = Driver(store)
        d.batch(Put(b"keep", b"me"), Alarm(1, AlarmType.CORRUPT, True))
        before = (snapshot(store), store.state(), store.state_digest(), store.alarms())
        batch = [
            (3, Put(b"small", b"").encode()),
            (4, Alarm(1, AlarmType.CORRUPT, False).encode()),
            (5, Put(b"big", b"x" * MiB).encode()),
        ]
        with pytest.raises(lmdb.Error) as e:
            store.apply(batch)
        assert is_full(e.value)
        assert (snapshot(store), store.state(), store.state_digest(), store.alarms()) == before
        assert store.applied_index() == 2
        # The caller may retry the same indexes with what fits.
        res = store.apply([*batch[:2], (5, b"")])
        assert [r.error for r in res] == [None, None, None]
        assert store.get(b"small") is not None and store.alarms() == []
    finally:
        env.close()


# --- budgets on reads outside apply --------------------------------------------------------


def test_range_budget(drv: Driver, store: MvccStore) -> None:
    drv.batch(*(Put(b"k%d" % i, b"v" * 10) for i in range(5)))  # 12 bytes per kv
    everything = Range(b"k", b"l")
    assert store.range(everything, Budget(5, 60)).count == 5
    with pytest.raises(ResultTooLarge) as e:
        store.range(everything, Budget(max_keys=4))
    assert e.value == ResultTooLarge("keys", 4)
    with pytest.raises(ResultTooLarge) as e:
        store.range(everything, Budget(max_bytes=59))
    assert e.value == ResultTooLarge("bytes", 59)
    # A limit bounds the bytes returned, not the keys scanned (count needs them all).
    assert store.range(Range(b"k", b"l", limit=2), Budget(max_bytes=36)).kvs[1].key == b"k1"
    with pytest.raises(ResultTooLarge):
        store.range(Range(b"k", b"l", limit=2), Budget(max_keys=4))
    # keys_only and count_only return no values: their byte cost is smaller or nothing.
    assert store.range(Range(b"k", b"l", keys_only=True), Budget(max_bytes=10)).count == 5
    assert store.range(Range(b"k", b"l", count_only=True), Budget(max_bytes=1)).count == 5
    # A budget is per request: a fresh one for the next request starts from zero.
    for _ in range(3):
        store.range(everything, Budget(5, 60))


def test_a_budget_counts_every_key_walked_in_large_ranges(drv: Driver, store: MvccStore) -> None:
    """The walk checks its budget in steps: a huge range with a tiny budget stops."""
    for start in range(0, 3000, 500):
        drv.batch(*(Put(b"big/%05d" % i, b"") for i in range(start, start + 500)))
    r = Range(b"big/", prefix_end(b"big/"))
    assert store.range(r, Budget(max_keys=3000)).count == 3000
    for limit in (1, 1023, 1024, 1025, 2999):
        with pytest.raises(ResultTooLarge):
            store.range(r, Budget(max_keys=limit))


def test_read_txn_shares_one_budget(drv: Driver, store: MvccStore) -> None:
    drv.batch(*(Put(b"k%d" % i, b"") for i in range(3)))
    t = Txn(
        (Compare(b"k", CompareTarget.VERSION, CompareResult.EQUAL, 1, b"l"),),
        (Range(b"k", b"l"), Txn((), (Range(b"k0"),), ())),
        (),
    )
    resp = store.read_txn(t)
    assert resp.succeeded and resp.revision == 4
    assert resp.responses[0] == RangeResponse(4, store.range(Range(b"k", b"l")).kvs, 3)
    assert store.read_txn(t, Budget(max_keys=7)).succeeded  # 3 + 3 + 1 keys walked
    with pytest.raises(ResultTooLarge):
        store.read_txn(t, Budget(max_keys=6))


def test_events_max_bytes_pages_at_revision_boundaries(drv: Driver, store: MvccStore) -> None:
    drv.ok(Txn((), (Put(b"a", b"x" * 100), Put(b"b", b"x" * 100)), ()))  # rev 2
    drv.batch(Put(b"c", b"x" * 100), Put(b"d", b"x" * 100))  # 3, 4
    page = store.events(1, *ALL, max_bytes=1)
    assert ([e.kv.key for e in page.events], page.last_revision) == ([b"a", b"b"], 2)
    page = store.events(3, *ALL, max_bytes=150)
    assert ([e.kv.key for e in page.events], page.last_revision) == ([b"c", b"d"], 4)
    page = store.events(3, *ALL, max_bytes=100)
    assert ([e.kv.key for e in page.events], page.last_revision) == ([b"c"], 3)
    assert len(store.events(1, *ALL).events) == 4


def test_an_overlong_client_id_is_refused_not_raised(drv: Driver, store: MvccStore) -> None:
    res = drv.batch(Put(b"k", b"v", client_id=b"c" * 256), Put(b"after", b""))
    assert isinstance(res[0].error, InvalidArgument)
    assert res[0].error.reason == Invalid.REQUEST_ID_TOO_LONG
    assert res[1].error is None and store.get(b"after") is not None


def test_client_ids_past_the_limit_are_refused_and_not_remembered(
    drv: Driver, store: MvccStore
) -> None:
    """Past MAX_CLIENT_ID (128) an id is refused at apply, by every command, before the
    dedup table sees it (so it is never stored)."""
    long_id = b"c" * 129
    a, b = drv.batch(Put(b"k", b"v", client_id=long_id), Noop(client_id=long_id))
    assert a.error == InvalidArgument(Invalid.REQUEST_ID_TOO_LONG)
    assert b.error == InvalidArgument(Invalid.REQUEST_ID_TOO_LONG)
    assert store.get(b"k") is None


# --- a read-only txn served locally answers what applying it would -------------------------

_keys = st.sampled_from([b"k0", b"k1", b"k5", b"k", b"x"])
_ends = st.sampled_from([b"", b"l", b"\x00", b"k3"])
_reads = st.builds(Range, _keys, _ends, st.sampled_from([0, 3]), st.sampled_from([0, 1, 3]),
                   st.booleans(), st.booleans())  # fmt: skip
_cmps = st.builds(Compare, _keys, st.sampled_from(CompareTarget), st.sampled_from(CompareResult),
                  st.integers(0, 3), _ends)  # fmt: skip


def _read_txns() -> st.SearchStrategy[Txn]:
    def extend(children: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
        branch = st.lists(children, max_size=3).map(tuple)
        return st.builds(Txn, st.lists(_cmps, max_size=2).map(tuple), branch, branch)

    return st.recursive(_reads, extend, max_leaves=8).filter(lambda t: isinstance(t, Txn))  # type: ignore[return-value]


def _outcome(fn) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    """The answer or the error's type; the exception itself is not kept (its traceback
    would pin the read transaction, and with it one of LMDB's reader slots)."""
    try:
        return ("ok", fn())
    except RaftkvError as e:
        return ("err", type(e).__name__)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(t=_read_txns(), max_keys=st.sampled_from([0, 1, 3, 5, 10, 30]),
       max_bytes=st.sampled_from([0, 1, 3, 5, 10, 30]))  # fmt: skip
def test_read_only_txns_answer_the_same_locally_and_through_the_log(
    drv: Driver, store: MvccStore, t: Txn, max_keys: int, max_bytes: int
) -> None:
    """The service answers a read-only txn from a snapshot (read_txn) instead of
    proposing it: the answer must be the one applying it would give. (Which budget
    error comes first may differ: apply evaluates every compare on the chosen path, and
    checks every range's revision, before it reads anything.)"""
    if store.current_revision() == 1:
        drv.batch(*(Put(b"k%d" % i, b"v" * i) for i in range(10)))
        drv.ok(DeleteRange(b"k5"))
    local = _outcome(lambda: store.read_txn(t, Budget(max_keys, max_bytes)))
    res = drv.one(dataclasses.replace(t, max_range_keys=max_keys, max_range_bytes=max_bytes))
    applied = ("ok", res.response) if res.error is None else ("err", type(res.error).__name__)
    assert local == applied
    assert res.events == [] and res.revision == store.current_revision() == 12
