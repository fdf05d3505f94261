"""Hostile entries never stop apply and never split replicas.

Whatever bytes reach the log — garbage, truncated or bit-flipped encodings, commands a
correct proposer would never send (empty or oversized keys, bad lease ids, negative
revisions, txns nested to the decoder's limit and past it, huge ranges under tiny
budgets, client ids reused for other commands) — `apply()` returns one result per
entry and raises nothing, and two independent replicas that apply the same entries,
cut into different batches, answer identically and end in the same state.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv.errors import InternalError, RaftkvError
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
    SortOrder,
    SortTarget,
    Txn,
    prefix_end,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.leases import MAX_LEASE_TTL
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import ApplyResult
from tests.storage.helpers import Driver

SEEDED = 2500  # keys every replica starts with, so ranges are large
MAX_KEY = 511  # LMDB's key size limit, which the store uses as its max key size

# Mostly plausible values, now and then one a correct proposer would never send.
I64 = st.sampled_from([0, 0, 0, 1, 2, 3, 5, 7, 2**32, 2**63 - 1, -1, -(2**63), 2**64 - 1])
small_keys = st.sampled_from([b"a", b"k/00001", b"k/01000", b"k/", b"z", b"\x00", b"\xff"])
keys = st.one_of(
    small_keys,
    small_keys,
    small_keys,
    st.binary(min_size=1, max_size=8),
    st.sampled_from([b"", b"x" * MAX_KEY, b"x" * (MAX_KEY + 1), b"y" * 5000]),
)
range_ends = st.sampled_from([b"", b"\x00", b"k0", b"a", b"k/00005"]) | st.binary(max_size=4)
values = st.binary(max_size=16) | st.sampled_from([b"v" * 20_000])
lease_ids = st.sampled_from([0, 0, 0, 100, 101, 102]) | I64
cids = st.one_of(
    st.none(),
    st.none(),
    st.sampled_from([b"c1", b"c2", b"c3"]),
    st.binary(min_size=0, max_size=300),
)
rids = st.none() | st.binary(max_size=20)
fields = st.sampled_from([0] * 8 + [1, 2, 3, 5, 2**63 - 1, 2**64 - 1, -1])
budgets = st.sampled_from([0, 0, 0, 0, 1, 2, 2, 5, 100, 5000, -1])


def put(key: bytes, value: bytes, lease: int, flags: list[bool], rid, cid) -> Put:  # type: ignore[no-untyped-def]
    return Put(key, value, lease, flags[0], flags[1], flags[2], rid, cid)


puts = st.builds(put, keys, values, lease_ids, st.lists(st.booleans(), min_size=3, max_size=3),
                 rids, cids)  # fmt: skip
deletes = st.builds(DeleteRange, keys, range_ends, st.booleans(), rids, cids)
ranges = st.builds(
    Range, keys, range_ends, fields, fields, st.booleans(), st.booleans(),
    st.sampled_from(SortOrder), st.sampled_from(SortTarget), fields, fields, fields, fields,
    rids, cids,
)  # fmt: skip


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    if draw(st.integers(0, 9)) == 0:  # the wrong operand type for the target
        operand: int | bytes = 5 if target == CompareTarget.VALUE else b"5"
    elif target == CompareTarget.VALUE:
        operand = draw(values)
    else:
        operand = draw(I64)
    return Compare(draw(keys), target, draw(st.sampled_from(CompareResult)), operand,
                   draw(range_ends))  # fmt: skip


def txns() -> st.SearchStrategy[Txn]:
    def extend(children: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
        branch = st.lists(children, max_size=3).map(tuple)
        return st.builds(Txn, st.lists(compares(), max_size=3).map(tuple), branch, branch,
                         rids, cids, budgets, budgets)  # fmt: skip

    return st.recursive(puts | deletes | ranges, extend, max_leaves=12).filter(
        lambda t: isinstance(t, Txn)
    )  # type: ignore[return-value]


@st.composite
def deep_txns(draw: st.DrawFn) -> Txn:
    """A chain of nested txns around the decoder's depth limit (256)."""
    depth = draw(st.sampled_from([20, 200, 255, 256, 257, 300]))
    inner: Txn = Txn((), (draw(puts | ranges | deletes),), ())
    for _ in range(depth):
        inner = Txn((), (inner,), ())
    return Txn((), (inner,), (), draw(rids), draw(cids), draw(budgets), draw(budgets))


@st.composite
def huge_reads(draw: st.DrawFn) -> Txn:
    """Reads over (nearly) every key, under a tiny budget stamped by the proposer."""
    everything = Range(b"\x00", b"\x00", keys_only=draw(st.booleans()))
    cmp = Compare(b"k/", CompareTarget.VERSION, CompareResult.GREATER, 0, prefix_end(b"k/"))
    success = (Put(b"huge", b"read"), everything) if draw(st.booleans()) else (everything,)
    return Txn((cmp,) if draw(st.booleans()) else (), success, (),
               draw(rids), draw(cids), draw(budgets), draw(budgets))  # fmt: skip


commands: st.SearchStrategy[Command] = st.one_of(
    puts,
    deletes,
    ranges,
    txns(),
    deep_txns(),
    huge_reads(),
    st.builds(Compact, I64, rids, cids),
    st.builds(
        LeaseGrant,
        st.sampled_from([-1, 0, 5, MAX_LEASE_TTL, MAX_LEASE_TTL + 1]),
        lease_ids,
        rids,
        cids,
    ),  # fmt: skip
    st.builds(LeaseRevoke, lease_ids, rids, cids),
    st.builds(
        LeaseCheckpoint, st.lists(st.tuples(lease_ids, I64), max_size=3).map(tuple), rids, cids
    ),  # fmt: skip
    st.builds(
        Alarm,
        st.sampled_from([0, 1, 2, 2**64 - 1, -1, -(2**63)]),
        st.sampled_from(AlarmType),
        st.booleans(),
        rids,
        cids,
    ),  # fmt: skip
    st.builds(Noop, rids, cids),
)


def encodable(cmd: Command) -> bytes | None:
    try:
        return cmd.encode()
    except (OverflowError, ValueError):  # msgpack cannot carry it: never reaches a log
        return None


@st.composite
def entries(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 15))
    if kind == 0:
        return draw(st.binary(max_size=64))  # random bytes
    if kind == 1:
        return b""  # an entry with no command (a leader's empty entry, a conf change)
    data = encodable(draw(commands))
    if data is None:
        return draw(st.binary(min_size=1, max_size=8))
    if kind == 2:
        return data[: draw(st.integers(0, len(data) - 1))]  # truncated
    if kind == 3:
        pos = draw(st.integers(0, len(data) - 1))
        return data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1 :]
    return data


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store holding SEEDED keys and two leases, copied for every example."""
    path = tmp_path_factory.mktemp("seeded")
    env = open_env(path, map_size=256 * MiB)
    try:
        d = Driver(MvccStore(env, quota_bytes=64 * MiB))
        d.batch(LeaseGrant(60, 100), LeaseGrant(60, 101))
        for start in range(0, SEEDED, 500):
            d.batch(
                *(Put(b"k/%05d" % i, b"v%d" % i, lease=100 if i % 3 == 0 else 0)
                  for i in range(start, start + 500))
            )  # fmt: skip
    finally:
        env.close()
    yield path


def cuts(draw: st.DrawFn, n: int) -> list[int]:
    points = draw(st.lists(st.integers(0, n), max_size=4))
    return sorted({0, n, *points})


def apply_in_batches(store: MvccStore, batch: list[tuple[int, bytes]], bounds: list[int]) -> list:  # type: ignore[type-arg]
    out: list[ApplyResult] = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        if hi > lo:
            out.extend(store.apply(batch[lo:hi]))
    return out


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(st.data())
def test_hostile_entries_never_escape_apply_nor_split_replicas(
    seeded: Path, data: st.DataObject
) -> None:
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    envs = []
    try:
        stores = []
        for name, map_size in (("a", 256 * MiB), ("b", 512 * MiB)):
            shutil.copytree(seeded, work / name)
            env = open_env(work / name, map_size=map_size)
            envs.append(env)
            stores.append(MvccStore(env, quota_bytes=64 * MiB, dedup_capacity=8))
        a, b = stores
        first = a.applied_index() + 1
        raw = data.draw(st.lists(entries(), min_size=5, max_size=30))
        batch = list(enumerate(raw, start=first))
        results_a = apply_in_batches(a, batch, cuts(data.draw, len(batch)))
        results_b = apply_in_batches(b, batch, cuts(data.draw, len(batch)))
        assert results_a == results_b
        assert [r.index for r in results_a] == [i for i, _ in batch]
        revision = 0
        for r in results_a:
            assert r.error is None or isinstance(r.error, RaftkvError)
            assert not isinstance(r.error, InternalError), r  # a crash inside apply: a bug
            if r.error is not None:
                assert r.events == [] and r.response is None
            if r.duplicate:
                assert r.events == []  # and the first outcome's (older) revision
            else:
                assert r.revision >= revision
                revision = r.revision
        assert a.state_digest() == b.state_digest()
        assert a.state() == b.state() and a.alarms() == b.alarms()
        assert a.leases() == b.leases()
        a.verify()
        b.verify()
    finally:
        for env in envs:
            env.close()
        shutil.rmtree(work, ignore_errors=True)
