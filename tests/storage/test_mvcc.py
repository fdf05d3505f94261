"""MvccStore unit tests: etcd v3 revision, version, range and txn semantics.

Where a test mirrors a captured etcd 3.4 exchange (/work/shared/etcd/
gateway-wire-format.md §6) it says so; the revisions in those tests are etcd's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import lmdb
import pytest

from raftkv.errors import (
    Compacted,
    DuplicateKey,
    FutureRevision,
    InternalError,
    Invalid,
    InvalidArgument,
    KeyNotFound,
    LeaseExists,
    LeaseNotFound,
    LeaseTTLTooLarge,
    NoSpace,
    RequestIdConflict,
    ResultTooLarge,
)
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    Noop,
    Put,
    Range,
    SortOrder,
    SortTarget,
    Txn,
    prefix_end,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import (
    DeleteRangeResponse,
    EventType,
    KeyValue,
    PutResponse,
    RangeResponse,
    TxnResponse,
)
from tests.storage.helpers import Driver

EQ, NE, GT, LT = (
    CompareResult.EQUAL,
    CompareResult.NOT_EQUAL,
    CompareResult.GREATER,
    CompareResult.LESS,
)
VER, CRE, MOD, VAL, LEA = (
    CompareTarget.VERSION,
    CompareTarget.CREATE,
    CompareTarget.MOD,
    CompareTarget.VALUE,
    CompareTarget.LEASE,
)
ALL = (b"\x00", b"\x00")


def keys(resp: RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


def test_fresh_store(store: MvccStore) -> None:
    assert (store.current_revision(), store.applied_index(), store.compact_revision()) == (1, 0, 0)
    assert store.range(Range(*ALL)) == RangeResponse(1, [], 0, False)
    assert store.conf_state() is None


def test_put_revisions_and_versions_match_etcd(drv: Driver, store: MvccStore) -> None:
    # etcd capture: first put -> revision 2; overwrite with prev_kv -> 3.
    assert drv.ok(Put(b"foo", b"bar")) == PutResponse(2, None)
    r = drv.ok(Put(b"foo", b"bar2", prev_kv=True))
    assert r == PutResponse(3, KeyValue(b"foo", 2, 2, 1, b"bar", 0))
    drv.batch(Put(b"foo/a", b"1"), Put(b"foo/b", b"2"), Put(b"fop", b"x"))
    assert store.current_revision() == 6
    assert store.range(Range(b"foo")) == RangeResponse(6, [KeyValue(b"foo", 2, 3, 2, b"bar2")], 1)
    assert store.get(b"foo", revision=2) == KeyValue(b"foo", 2, 2, 1, b"bar")
    assert store.range(Range(b"nope")) == RangeResponse(6, [], 0, False)
    assert store.range(Range(*ALL, count_only=True)).count == 4


def test_delete_resets_version_and_create_revision(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"k", b"1"), Put(b"k", b"2"))
    r = drv.ok(DeleteRange(b"k", prev_kv=True))
    assert r == DeleteRangeResponse(4, 1, [KeyValue(b"k", 2, 3, 2, b"2")])
    assert store.get(b"k") is None
    drv.ok(Put(b"k", b"3"))
    assert store.get(b"k") == KeyValue(b"k", 5, 5, 1, b"3")
    # Deleting nothing does not create a revision.
    assert drv.ok(DeleteRange(b"missing")) == DeleteRangeResponse(5, 0, [])
    assert drv.ok(DeleteRange(b"a", b"b")) == DeleteRangeResponse(5, 0, [])
    assert store.current_revision() == 5


def test_delete_range_is_one_revision_with_sub_revisions(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"a/1", b""), Put(b"a/2", b""), Put(b"a/3", b""), Put(b"b", b""))
    res = drv.one(DeleteRange(b"a/", prefix_end(b"a/")))
    assert res.response == DeleteRangeResponse(6, 3, [])
    assert [(e.type, e.kv.key, e.revision) for e in res.events] == [
        (EventType.DELETE, b"a/1", 6),
        (EventType.DELETE, b"a/2", 6),
        (EventType.DELETE, b"a/3", 6),
    ]
    assert keys(store.range(Range(*ALL))) == [b"b"]


def test_range_end_semantics(drv: Driver, store: MvccStore) -> None:
    drv.batch(*(Put(k, b"v") for k in (b"a", b"ab", b"abc", b"b", b"\xff", b"\xff\xff")))
    assert keys(store.range(Range(b"ab"))) == [b"ab"]  # single key
    assert keys(store.range(Range(b"a", b"b"))) == [b"a", b"ab", b"abc"]  # half open
    assert keys(store.range(Range(b"ab", b"\x00"))) == [b"ab", b"abc", b"b", b"\xff", b"\xff\xff"]
    assert len(store.range(Range(*ALL)).kvs) == 6
    assert keys(store.range(Range(b"b", b"a"))) == []  # end before start
    assert keys(store.range(Range(b"ab", prefix_end(b"ab")))) == [b"ab", b"abc"]
    assert keys(store.range(Range(b"\xff", prefix_end(b"\xff")))) == [b"\xff", b"\xff\xff"]


def test_prefix_end() -> None:
    assert prefix_end(b"foo/") == b"foo0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"
    assert prefix_end(b"") == b"\x00"


def test_range_limit_count_more_and_projection(drv: Driver, store: MvccStore) -> None:
    drv.batch(*(Put(b"k%d" % i, b"v%d" % i) for i in range(5)))
    r = store.range(Range(b"k", b"l", limit=2))
    assert (keys(r), r.count, r.more) == ([b"k0", b"k1"], 5, True)
    r = store.range(Range(b"k", b"l", limit=5))
    assert (len(r.kvs), r.more) == (5, False)
    r = store.range(Range(b"k", b"l", keys_only=True, limit=1))
    assert r.kvs == [KeyValue(b"k0", 2, 2, 1, b"", 0)]
    r = store.range(Range(b"k", b"l", count_only=True))
    assert (r.kvs, r.count, r.more) == ([], 5, False)


def test_range_sorting(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"a", b"3"), Put(b"b", b"1"), Put(b"c", b"2"), Put(b"b", b"9"))
    desc = store.range(Range(*ALL, sort_order=SortOrder.DESCEND))
    assert keys(desc) == [b"c", b"b", b"a"]
    by_value = store.range(Range(*ALL, sort_target=SortTarget.VALUE))  # NONE + non-key => ASCEND
    assert keys(by_value) == [b"c", b"a", b"b"]
    by_mod = store.range(
        Range(*ALL, sort_order=SortOrder.DESCEND, sort_target=SortTarget.MOD, limit=2)
    )
    assert (keys(by_mod), by_mod.more, by_mod.count) == ([b"b", b"c"], True, 3)
    by_version = store.range(
        Range(*ALL, sort_order=SortOrder.DESCEND, sort_target=SortTarget.VERSION)
    )
    assert keys(by_version)[0] == b"b"
    by_create = store.range(Range(*ALL, sort_order=SortOrder.ASCEND, sort_target=SortTarget.CREATE))
    assert keys(by_create) == [b"a", b"b", b"c"]


def test_range_revision_filters(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"a", b""), Put(b"b", b""), Put(b"c", b""), Put(b"a", b""))  # a:2,5 b:3 c:4
    assert keys(store.range(Range(*ALL, min_mod_revision=4))) == [b"a", b"c"]
    assert keys(store.range(Range(*ALL, max_mod_revision=3))) == [b"b"]
    assert keys(store.range(Range(*ALL, min_create_revision=3, max_create_revision=3))) == [b"b"]
    r = store.range(Range(*ALL, min_mod_revision=4, limit=1))
    assert (keys(r), r.more, r.count) == ([b"a"], True, 3)  # count ignores filters, as etcd


def test_historical_reads_and_revision_errors(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"k", b"1"), Put(b"k", b"2"), DeleteRange(b"k"), Put(b"k", b"3"))
    assert [store.get(b"k", rev) for rev in (1, 2, 3, 4, 5)] == [
        None,
        KeyValue(b"k", 2, 2, 1, b"1"),
        KeyValue(b"k", 2, 3, 2, b"2"),
        None,
        KeyValue(b"k", 5, 5, 1, b"3"),
    ]
    assert store.range(Range(b"k", revision=3)).revision == 5  # header is the current revision
    with pytest.raises(FutureRevision) as e:
        store.range(Range(b"k", revision=6))
    assert e.value == FutureRevision(5)  # etcd's wording: test_error_wording.py


def test_bad_requests(drv: Driver, store: MvccStore, env: lmdb.Environment) -> None:
    with pytest.raises(InvalidArgument) as e:
        store.range(Range(b""))
    assert e.value == InvalidArgument(Invalid.EMPTY_KEY)
    assert drv.one(Put(b"", b"v")).error == InvalidArgument(Invalid.EMPTY_KEY)
    big = b"k" * (env.max_key_size() + 1)
    err = drv.one(Put(big, b"v")).error
    assert isinstance(err, InvalidArgument) and err.reason == Invalid.KEY_TOO_LARGE
    assert drv.one(Put(b"k", b"v", ignore_value=True)).error == InvalidArgument(
        Invalid.VALUE_PROVIDED
    )
    assert drv.one(Put(b"k", lease=5, ignore_lease=True)).error == InvalidArgument(
        Invalid.LEASE_PROVIDED
    )
    assert store.current_revision() == 1


def test_malformed_and_empty_entries_do_not_stop_the_batch(drv: Driver, store: MvccStore) -> None:
    res = drv.batch(b"", b"\xc1garbage", b"\x93\x63\xc0\xc0", Put(b"k", b"v"), Noop())
    assert [r.index for r in res] == [1, 2, 3, 4, 5]
    assert res[0].response is None and res[0].error is None
    for bad in res[1:3]:  # 0xc1 is never valid msgpack; [99, None, None] has an unknown tag
        assert isinstance(bad.error, InvalidArgument)
        assert bad.error.reason == Invalid.MALFORMED_COMMAND
        assert (bad.revision, bad.events) == (1, [])
    assert res[3].response == PutResponse(2, None)
    assert res[4].response is not None and res[4].revision == 2
    assert store.applied_index() == 5


def test_put_ignore_value_and_ignore_lease(drv: Driver, store: MvccStore) -> None:
    lease = drv.ok(LeaseGrant(60, 7)).id
    drv.ok(Put(b"x", b""))
    drv.ok(Put(b"k", b"v1", lease=lease))
    assert drv.one(Put(b"missing", ignore_value=True)).error == KeyNotFound()
    assert drv.one(Put(b"missing", ignore_lease=True)).error == KeyNotFound()
    drv.ok(Put(b"k", ignore_value=True))  # keeps value, drops the lease
    assert store.get(b"k") == KeyValue(b"k", 3, 4, 2, b"v1", 0)
    drv.ok(Put(b"k", b"v2", lease=lease))
    drv.ok(Put(b"k", b"v3", ignore_lease=True))
    assert store.get(b"k") == KeyValue(b"k", 3, 6, 4, b"v3", lease)
    assert store.lease_get(lease).keys == (b"k",)


# --- txn ---------------------------------------------------------------------------------


def test_txn_cas_matches_etcd_capture(drv: Driver) -> None:
    drv.batch(*(Put(b"r%d" % i, b"") for i in range(4)), Put(b"foo", b"bar2"))  # revision 6
    cas = Txn(
        (Compare(b"foo", VAL, EQ, b"bar2"),),
        (Put(b"foo", b"bar3"),),
        (Range(b"foo"),),
    )
    assert drv.ok(cas) == TxnResponse(7, True, [PutResponse(7, None)])
    again = drv.ok(cas)
    assert again == TxnResponse(
        7, False, [RangeResponse(7, [KeyValue(b"foo", 6, 7, 2, b"bar3")], 1, False)]
    )


def test_txn_create_if_absent(drv: Driver) -> None:
    create = Txn((Compare(b"new", CRE, EQ, 0),), (Put(b"new", b"v"),), ())
    assert drv.ok(create) == TxnResponse(2, True, [PutResponse(2, None)])
    assert drv.ok(create) == TxnResponse(2, False, [])
    assert drv.ok(Txn()) == TxnResponse(2, True, [])


def test_txn_mixed_ops_and_nested_txn_match_etcd_capture(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"foo", b"v"), Put(b"foo", b"v"), Put(b"foo/a", b"1"), Put(b"foo/b", b"2"))
    drv.batch(Put(b"fop", b"x"), Put(b"pad", b""), Put(b"pad", b""))  # revision 8
    res = drv.one(
        Txn(
            (
                Compare(b"foo", VER, GT, 1),
                Compare(b"foo", MOD, LT, 100),
                Compare(b"foo", LEA, NE, 5),
            ),
            (
                Range(b"foo/", prefix_end(b"foo/")),
                DeleteRange(b"fop", prev_kv=True),
                Txn((), (Put(b"nested", b"n"),), ()),
            ),
            (),
        )
    )
    resp = res.response
    assert isinstance(resp, TxnResponse)
    assert (resp.revision, resp.succeeded) == (9, True)
    rng, dele, nested = resp.responses
    assert isinstance(rng, RangeResponse) and rng.revision == 8 and rng.count == 2
    assert dele == DeleteRangeResponse(9, 1, [KeyValue(b"fop", 6, 6, 1, b"x")])
    assert nested == TxnResponse(0, True, [PutResponse(9, None)])
    assert [(e.type, e.kv.key, e.revision) for e in res.events] == [
        (EventType.DELETE, b"fop", 9),
        (EventType.PUT, b"nested", 9),
    ]
    assert store.get(b"nested") == KeyValue(b"nested", 9, 9, 1, b"n")


def test_txn_range_sees_its_own_earlier_writes(drv: Driver) -> None:
    drv.ok(Put(b"a", b"old"))
    resp = drv.ok(Txn((), (Put(b"a", b"new"), Range(b"a"), Put(b"b", b"x"), Range(b"b")), ()))
    assert [r.revision for r in resp.responses] == [3, 3, 3, 3]
    assert resp.responses[1].kvs == [KeyValue(b"a", 2, 3, 2, b"new")]
    assert resp.responses[3].kvs == [KeyValue(b"b", 3, 3, 1, b"x")]


def test_txn_range_compare_needs_every_key(drv: Driver) -> None:
    drv.batch(Put(b"foo/a", b"1"), Put(b"foo/b", b"2"))
    end = prefix_end(b"foo/")
    assert drv.ok(Txn((Compare(b"foo/", VAL, GT, b"0", end),))).succeeded
    assert not drv.ok(Txn((Compare(b"foo/", VAL, GT, b"1", end),))).succeeded
    # An empty range compares like one zero-valued key, except VALUE, which fails.
    assert drv.ok(Txn((Compare(b"x/", VER, EQ, 0, prefix_end(b"x/")),))).succeeded
    assert not drv.ok(Txn((Compare(b"x", VAL, EQ, b""),))).succeeded
    assert drv.ok(Txn((Compare(b"foo/", CRE, GT, 1, b"\x00"),))).succeeded


@pytest.mark.parametrize(
    ("target", "result", "operand", "expected"),
    [
        (VER, EQ, 2, True),
        (VER, NE, 2, False),
        (VER, GT, 1, True),
        (VER, LT, 2, False),
        (CRE, EQ, 2, True),
        (MOD, EQ, 3, True),
        (MOD, GT, 3, False),
        (VAL, EQ, b"v2", True),
        (VAL, LT, b"v3", True),
        (VAL, GT, b"v3", False),
        (LEA, EQ, 0, True),
        (LEA, NE, 0, False),
    ],
)
def test_compare_targets(
    drv: Driver, target: CompareTarget, result: CompareResult, operand: int | bytes, expected: bool
) -> None:
    drv.batch(Put(b"k", b"v1"), Put(b"k", b"v2"))  # create 2, mod 3, version 2
    assert drv.ok(Txn((Compare(b"k", target, result, operand),))).succeeded is expected


def test_nested_compares_see_the_state_before_the_txn(drv: Driver) -> None:
    """etcd evaluates every compare on the chosen path before running any op."""
    inner = Txn((Compare(b"k", CRE, EQ, 0),), (Put(b"inner", b"then"),), (Put(b"inner", b"else"),))
    resp = drv.ok(Txn((), (Put(b"k", b"v"), inner), ()))
    assert resp.responses[1].succeeded  # k did not exist when the txn began


def test_txn_without_writes_keeps_the_revision(drv: Driver, store: MvccStore) -> None:
    drv.ok(Put(b"a", b""))
    res = drv.one(Txn((), (Range(b"a"), DeleteRange(b"zzz")), ()))
    assert (res.revision, res.events) == (2, [])
    assert store.current_revision() == 2


@pytest.mark.parametrize(
    "txn",
    [
        Txn((), (Put(b"a", b"1"), Put(b"a", b"2")), ()),
        Txn((), (DeleteRange(b"a", b"c"), Put(b"b", b"")), ()),
        Txn((), (Put(b"a", b""), Txn((), (Put(b"a", b""),), ())), ()),
        Txn((), (DeleteRange(b"a", b"\x00"), Txn((), (), (Put(b"zz", b""),))), ()),
        Txn((), (Txn((), (Put(b"a", b""),), ()), Txn((), (), (Put(b"a", b""),))), ()),
    ],
)
def test_txn_duplicate_keys_are_refused(drv: Driver, store: MvccStore, txn: Txn) -> None:
    res = drv.one(txn)
    assert res.error == DuplicateKey()
    assert (res.revision, res.events, res.response) == (1, [], None)
    assert store.current_revision() == 1


def test_txn_then_and_else_may_put_the_same_key(drv: Driver) -> None:
    nested = Txn((), (Put(b"a", b"then"),), (Put(b"a", b"else"),))
    assert drv.ok(Txn((), (nested,), ())).succeeded
    # Failure branches are checked on their own, too.
    assert drv.one(Txn((), (), (Put(b"b", b""), Put(b"b", b"")))).error == DuplicateKey()


def test_txn_failing_checks_write_nothing(drv: Driver, store: MvccStore) -> None:
    drv.ok(Put(b"k", b"v"))
    bad_lease = Txn((), (Put(b"a", b""), Put(b"b", b"", lease=42)), ())
    assert drv.one(bad_lease).error == LeaseNotFound(42)
    future = Txn((), (Put(b"a", b""), Range(b"k", revision=3)), ())
    assert drv.one(future).error == FutureRevision(2)
    missing = Txn((), (Put(b"a", b""), Put(b"nope", ignore_value=True)), ())
    assert drv.one(missing).error == KeyNotFound()
    # Only the branch that runs is checked.
    ok = Txn((Compare(b"k", VAL, EQ, b"v"),), (Put(b"a", b""),), (Put(b"b", b"", lease=42),))
    assert drv.ok(ok).succeeded
    assert keys(store.range(Range(*ALL))) == [b"a", b"k"]
    assert store.current_revision() == 3


# --- compaction ------------------------------------------------------------------------


def test_compaction_keeps_latest_live_versions(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"a", b"1"), Put(b"a", b"2"), Put(b"b", b"1"), DeleteRange(b"b"))  # rev 5
    drv.batch(Put(b"c", b"1"), Put(b"a", b"3"))  # rev 7
    before = store.space_used()
    assert drv.ok(Compact(6)).revision == 7
    assert store.compact_revision() == 6
    assert store.space_used() < before
    with pytest.raises(Compacted) as e:
        store.range(Range(b"a", revision=5))
    assert e.value == Compacted(6)
    assert store.range(Range(*ALL, revision=6)).kvs == [
        KeyValue(b"a", 2, 3, 2, b"2"),
        KeyValue(b"c", 6, 6, 1, b"1"),
    ]
    assert keys(store.range(Range(*ALL))) == [b"a", b"c"]
    assert store.get(b"a") == KeyValue(b"a", 2, 7, 3, b"3")
    # Compacting again at or below the compact revision, or in the future, fails.
    assert drv.one(Compact(6)).error == Compacted(6)
    assert drv.one(Compact(8)).error == FutureRevision(7)
    drv.ok(Compact(7))
    assert store.get(b"a", revision=7) == KeyValue(b"a", 2, 7, 3, b"3")


def test_compaction_at_a_delete_keeps_that_event(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"a", b"1"), Put(b"b", b"1"), DeleteRange(b"a"))  # delete at 4
    drv.ok(Compact(4))
    page = store.events(4, *ALL)
    assert [(e.type, e.kv.key, e.revision) for e in page.events] == [(EventType.DELETE, b"a", 4)]
    with pytest.raises(Compacted):
        store.events(3, *ALL)
    drv.ok(Put(b"c", b""))
    drv.ok(Compact(5))
    assert keys(store.range(Range(*ALL, revision=5))) == [b"b", b"c"]
    assert [e.kv.key for e in store.events(5, *ALL).events] == [b"c"]


# --- events -----------------------------------------------------------------------------


def test_events_replay_history_in_order(drv: Driver, store: MvccStore) -> None:
    drv.batch(Put(b"w/a", b"1"), Put(b"w/a", b"2"), Put(b"x", b""))
    drv.ok(Txn((), (Put(b"w/b", b"3"), Put(b"w/c", b"4")), ()))
    drv.ok(DeleteRange(b"w/a"))
    page = store.events(2, b"w/", prefix_end(b"w/"), prev_kv=True)
    assert page.last_revision == 6
    got = [(e.type, e.kv, e.prev_kv) for e in page.events]
    assert got == [
        (EventType.PUT, KeyValue(b"w/a", 2, 2, 1, b"1"), None),
        (EventType.PUT, KeyValue(b"w/a", 2, 3, 2, b"2"), KeyValue(b"w/a", 2, 2, 1, b"1")),
        (EventType.PUT, KeyValue(b"w/b", 5, 5, 1, b"3"), None),
        (EventType.PUT, KeyValue(b"w/c", 5, 5, 1, b"4"), None),
        (EventType.DELETE, KeyValue(b"w/a", 0, 6, 0, b"", 0), KeyValue(b"w/a", 2, 3, 2, b"2")),
    ]
    assert [e.kv.key for e in store.events(1, b"w/a").events] == [b"w/a"] * 3
    assert store.events(7, *ALL) == ([], 6)


def test_events_limit_stops_at_revision_boundaries(drv: Driver, store: MvccStore) -> None:
    drv.ok(Txn((), (Put(b"a", b""), Put(b"b", b""), Put(b"c", b"")), ()))  # rev 2
    drv.batch(Put(b"d", b""), Put(b"e", b""))  # 3, 4
    page = store.events(1, *ALL, limit=2)
    assert ([e.kv.key for e in page.events], page.last_revision) == ([b"a", b"b", b"c"], 2)
    page = store.events(3, *ALL, limit=1)
    assert ([e.kv.key for e in page.events], page.last_revision) == ([b"d"], 3)
    # Nothing matched in the scanned revisions, but the page says how far it got.
    assert store.events(2, b"zzz") == ([], 4)


def test_apply_returns_events_for_the_watch_hub(drv: Driver) -> None:
    drv.ok(Put(b"k", b"1"))
    res = drv.one(Put(b"k", b"2"))
    assert res.events[0].prev_kv == KeyValue(b"k", 2, 2, 1, b"1")
    assert drv.one(Range(b"k")).events == []


# --- exactly once, dedup, restart --------------------------------------------------------


def test_entries_at_or_below_the_applied_index_are_skipped(store: MvccStore) -> None:
    store.apply([(1, Put(b"a", b"1").encode()), (2, Put(b"a", b"2").encode())])
    res = store.apply([(2, Put(b"a", b"X").encode()), (3, Put(b"b", b"").encode())])
    assert [r.skipped for r in res] == [True, False]
    assert store.get(b"a").value == b"2"
    assert all(r.skipped for r in store.apply([(1, b""), (3, b"")]))
    with pytest.raises(ValueError, match="expected 4"):
        store.apply([(5, b"")])
    assert store.applied_index() == 3


def test_client_id_dedup_returns_the_first_result(drv: Driver, store: MvccStore) -> None:
    first = drv.one(Put(b"k", b"v1", client_id=b"cid-1", request_id=b"w1"))
    drv.ok(Put(b"other", b""))
    # A retry of the same command (a new waiter token) gets the first outcome back.
    dup = drv.one(Put(b"k", b"v1", client_id=b"cid-1", request_id=b"w2"))
    assert dup.duplicate and dup.response == first.response and dup.revision == 2
    assert dup.error is None and dup.events == [] and dup.request_id == b"w2"
    assert store.get(b"k") == KeyValue(b"k", 2, 2, 1, b"v1")
    assert store.current_revision() == 3
    # Errors are remembered too, and duplicates inside one batch are caught.
    a, b = drv.batch(
        Put(b"x", lease=99, client_id=b"c2", request_id=b"w3"),
        Put(b"x", lease=99, client_id=b"c2", request_id=b"w4"),
    )
    assert (a.error, a.duplicate, a.request_id) == (LeaseNotFound(99), False, b"w3")
    assert (b.error, b.duplicate, b.request_id) == (LeaseNotFound(99), True, b"w4")
    # ...so a lease granted later does not make a delayed duplicate succeed.
    drv.ok(LeaseGrant(10, 99))
    assert drv.one(Put(b"x", lease=99, client_id=b"c2")).error == LeaseNotFound(99)
    assert store.get(b"x") is None


def test_client_id_reused_for_another_command_is_a_conflict(drv: Driver, store: MvccStore) -> None:
    first = drv.one(Put(b"k", b"v1", client_id=b"cid"))
    before = store.state_digest()
    for other in (
        Put(b"k", b"v2", client_id=b"cid"),  # another value
        Put(b"k", b"v1", prev_kv=True, client_id=b"cid"),  # another flag
        DeleteRange(b"k", client_id=b"cid"),  # another command
        Txn((), (Put(b"k", b"v1"),), (), client_id=b"cid"),
    ):
        res = drv.one(dataclasses.replace(other, request_id=b"waiter"))
        assert res.error == RequestIdConflict(), other
        assert (res.response, res.events, res.duplicate) == (None, [], False)
        assert (res.revision, res.request_id) == (2, b"waiter")
    assert store.state_digest() == {**before, "applied": store.applied_index()}
    # The id still answers the command it was first used for.
    again = drv.one(Put(b"k", b"v1", client_id=b"cid"))
    assert again.duplicate and again.response == first.response
    # A conflict inside the batch that first used the id, too.
    a, b, c = drv.batch(
        Txn((), (Put(b"t", b"1"),), (), client_id=b"t"),
        Txn((), (Put(b"t", b"2"),), (), client_id=b"t"),
        Txn((), (Put(b"t", b"1"),), (), client_id=b"t", max_range_keys=7),
    )
    assert a.error is None and b.error == RequestIdConflict()
    assert c.duplicate and c.response == a.response  # stamped budgets are not the command
    assert store.get(b"t").value == b"1"


def test_a_request_id_alone_does_not_deduplicate(drv: Driver, store: MvccStore) -> None:
    """The request id is the proposer's waiter token: two proposals that happen to share
    one are two commands, and each result carries its token back."""
    a, b = drv.batch(Put(b"k", b"1", request_id=b"same"), Put(b"k", b"1", request_id=b"same"))
    assert not a.duplicate and not b.duplicate
    assert (a.request_id, b.request_id) == (b"same", b"same")
    assert store.get(b"k").version == 2
    # A client id equal to an earlier request id is a fresh id, too.
    assert not drv.one(Put(b"k", b"1", client_id=b"same")).duplicate


def test_reads_are_not_remembered(drv: Driver, store: MvccStore) -> None:
    r1 = drv.one(Range(b"k", client_id=b"read"))
    drv.ok(Put(b"k", b"v"))
    r2 = drv.one(Range(b"k", client_id=b"read"))
    assert not r2.duplicate and r2.response.count == 1 and r1.response.count == 0
    # ...but a read cannot borrow an id that a write holds.
    drv.ok(Put(b"w", b"", client_id=b"write"))
    assert drv.one(Range(b"w", client_id=b"write")).error == RequestIdConflict()


def test_dedup_table_forgets_the_oldest_ids(env: lmdb.Environment) -> None:
    store = MvccStore(env, quota_bytes=64 * MiB, dedup_capacity=3)
    d = Driver(store)
    for i in range(5):
        d.ok(Put(b"k", b"%d" % i, client_id=b"id%d" % i))
    # id0 was evicted: it is free again, even for another command.
    assert not d.one(Put(b"k", b"again", client_id=b"id0")).duplicate
    assert d.one(Put(b"k", b"4", client_id=b"id4")).duplicate
    assert d.one(Put(b"k", b"other", client_id=b"id4")).error == RequestIdConflict()
    # Eviction inside one batch: id4 is pushed out by two newer ids, then comes back.
    res = d.batch(
        Put(b"n", b"0", client_id=b"n0"),
        Put(b"n", b"1", client_id=b"n1"),
        Put(b"k", b"4", client_id=b"id4"),
    )
    assert not res[-1].duplicate
    assert d.one(Put(b"k", b"4", client_id=b"id4")).duplicate
    assert d.one(Put(b"n", b"0", client_id=b"n0")).duplicate
    assert not d.one(Put(b"k", b"again", client_id=b"id0")).duplicate  # pushed out by id4


def test_everything_survives_a_restart(env: lmdb.Environment, env_path: Path) -> None:
    store = MvccStore(env, quota_bytes=64 * MiB)
    d = Driver(store)
    lease = d.ok(LeaseGrant(30)).id
    d.batch(Put(b"a", b"1", lease=lease), Put(b"a", b"2", client_id=b"cid"), Put(b"b", b""))
    d.ok(Compact(3))
    d.ok(Alarm(3, AlarmType.NOSPACE, True))
    store.apply([(d.index + 1, b"")], conf_state=b"members")
    expected = (
        store.range(Range(*ALL)),
        store.leases(),
        store.space_used(),
        store.current_revision(),
        store.alarms(),
        store.state_digest(),
        store.state(),
    )
    env.close()
    env2 = open_env(env_path, map_size=256 * MiB)
    try:
        s2 = MvccStore(env2, quota_bytes=64 * MiB)
        got = (
            s2.range(Range(*ALL)),
            s2.leases(),
            s2.space_used(),
            s2.current_revision(),
            s2.alarms(),
            s2.state_digest(),
            s2.state(),
        )
        assert got == expected
        assert (s2.applied_index(), s2.compact_revision(), s2.conf_state()) == (7, 3, b"members")
        assert s2.verify() > 0
        dup, conflict = s2.apply(
            [
                (8, Put(b"a", b"2", client_id=b"cid").encode()),
                (9, Put(b"a", b"3", client_id=b"cid").encode()),
            ]
        )
        assert dup.duplicate and dup.revision == 3
        assert conflict.error == RequestIdConflict()
    finally:
        env2.close()


def test_conf_state_is_stored_with_the_batch(store: MvccStore) -> None:
    store.set_conf_state(b"v1")
    assert store.conf_state() == b"v1" and store.applied_index() == 0
    store.apply([(1, b"")], conf_state=b"v2")
    assert (store.conf_state(), store.applied_index()) == (b"v2", 1)


def test_error_codes_are_stable() -> None:
    """Errors are persisted in the dedup table by numeric code: codes never change."""
    codes = {
        InvalidArgument: 1,
        DuplicateKey: 3,
        KeyNotFound: 4,
        Compacted: 10,
        FutureRevision: 11,
        LeaseNotFound: 20,
        LeaseExists: 21,
        LeaseTTLTooLarge: 22,
        NoSpace: 30,
        ResultTooLarge: 31,
        RequestIdConflict: 40,
        InternalError: 99,
    }
    assert {cls: cls.code for cls in codes} == codes
    assert [int(r) for r in Invalid] == list(range(1, 17))
