"""In-process checks of test mode: env parsing, the clock hook and the mutations that are
best observed below the HTTP layer (lessor, state machine, Raft core)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkv import testmode as tm
from raftkv.node.lessor import Lessor
from raftkv.raft import Role
from raftkv.storage import commands as cmds
from raftkv.storage.env import GiB, open_env
from raftkv.storage.errors import CorruptionError
from raftkv.storage.mvcc import REVISION_META_EVERY, MvccStore
from raftkv.storage.results import LeaseInfo
from tests.raft.harness import Net


@pytest.fixture(autouse=True)
def _reset_testmode() -> Iterator[None]:
    yield
    tm.configure({})


def test_test_only_env_is_refused_without_test_mode() -> None:
    for var in tm.GATED_ENV:
        with pytest.raises(tm.TestModeError, match="RAFTKV_TEST_MODE=1"):
            tm.load({var: "1"})
    assert not tm.load({}).enabled
    s = tm.configure({})
    assert not tm.enabled() and not tm.mutation("no-dedup") and s.core_bugs == frozenset()
    with pytest.raises(tm.TestModeError):
        tm.arm("after_apply_before_ack", "crash")


def test_env_parsing_in_test_mode() -> None:
    s = tm.load(
        {
            "RAFTKV_TEST_MODE": "1",
            "RAFTKV_MUTATIONS": "double-vote, no-dedup,figure8-commit",
            "RAFTKV_FAILPOINTS": "after_apply_before_ack=sleep(5),before_snapshot_install=crash",
            "RAFTKV_CLOCK_RATE": "1.5",
            "RAFTKV_LAZY_FSYNC": "1",
        }
    )
    assert s.mutations == {"double-vote", "no-dedup", "figure8-commit"}
    assert s.core_bugs == {"double_vote", "commit_old_term"}
    assert s.failpoints == {
        "after_apply_before_ack": "sleep(5)",
        "before_snapshot_install": "crash",
    }
    assert s.clock.rate == 1.5 and s.lazy_fsync
    for bad in (
        {"RAFTKV_MUTATIONS": "no-such-bug"},
        {"RAFTKV_FAILPOINTS": "nowhere=crash"},
        {"RAFTKV_FAILPOINTS": "after_apply_before_ack=explode"},
        {"RAFTKV_CLOCK_RATE": "0"},
    ):
        with pytest.raises(tm.TestModeError):
            tm.load({"RAFTKV_TEST_MODE": "1", **bad})


def test_every_core_mutation_is_a_planted_core_bug() -> None:
    from raftkv.raft.core import PLANTED_BUGS

    assert set(tm.CORE_BUG_MUTATIONS.values()) <= PLANTED_BUGS


def test_sleep_failpoint_delays_and_off_disarms() -> None:
    tm.configure({"RAFTKV_TEST_MODE": "1"})
    tm.arm("between_state_and_applied", "sleep(200)")
    t0 = time.monotonic()
    tm.hit("between_state_and_applied")
    assert time.monotonic() - t0 >= 0.19
    tm.arm("between_state_and_applied", "off")
    t0 = time.monotonic()
    tm.hit("between_state_and_applied")
    assert time.monotonic() - t0 < 0.1


def test_clock_rate_and_offset() -> None:
    c = tm.Clock()
    c.set(offset_ms=5000)
    assert c.monotonic() - time.monotonic() == pytest.approx(5.0, abs=0.05)
    c.set(offset_ms=0, rate=10)
    t0, r0 = c.monotonic(), time.monotonic()
    time.sleep(0.1)
    assert (c.monotonic() - t0) / (time.monotonic() - r0) == pytest.approx(10, rel=0.2)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("mutated", [False, True])
def test_lease_no_ttl_refresh_keeps_stale_deadline(mutated: bool) -> None:
    clock = FakeClock()
    lessor = Lessor(1, clock=clock, keep_deadlines=mutated)
    lessor.granted(7, 10, leader=True)  # deadline 10
    clock.t = 8.0
    lessor.demote()  # leadership lost for a while...
    clock.t = 9.0
    lessor.promote([LeaseInfo(7, 10, 0)])  # ...and regained: a fresh TTL is due
    clock.t = 12.0
    assert (lessor.expired() == [7]) is mutated
    assert lessor.remaining(7) == (0 if mutated else 7)


@pytest.mark.parametrize("mutated", [False, True])
def test_lease_no_ttl_refresh_new_leader_trusts_grant_time(mutated: bool) -> None:
    clock = FakeClock()
    follower = Lessor(1, clock=clock, keep_deadlines=mutated)
    follower.granted(7, 10, leader=False)  # the leader's keepalives never reach it
    clock.t = 20.0  # the lease was kept alive on the old leader all along
    follower.promote([LeaseInfo(7, 10, 0)])
    assert (follower.expired() == [7]) is mutated


def _mvcc(path: Path) -> MvccStore:
    env = open_env(path, 1 * GiB)
    return MvccStore(env, quota_bytes=64 << 20)


@pytest.mark.parametrize("dedup", [True, False])
def test_no_dedup_applies_a_duplicated_entry_twice(tmp_path: Path, dedup: bool) -> None:
    env = open_env(tmp_path, 1 * GiB)
    store = MvccStore(env, quota_bytes=64 << 20, **({} if dedup else {"dedup_capacity": 0}))
    put = cmds.Put(b"k", b"v", client_id=b"c" * 16).encode()
    res = store.apply([(1, put), (2, put)])
    assert res[1].duplicate is dedup
    assert store.current_revision() == (2 if dedup else 3)
    # Either way a request id (the proposer's waiter token) alone never deduplicates.
    by_token = cmds.Put(b"t", b"v", request_id=b"r" * 16).encode()
    res = store.apply([(3, by_token), (4, by_token)])
    assert not res[1].duplicate and store.get(b"t").version == 2
    env.close()


def test_non_atomic_apply_commits_applied_index_before_the_state(tmp_path: Path) -> None:
    env = open_env(tmp_path, 1 * GiB)
    store = MvccStore(env, quota_bytes=64 << 20)

    def crash() -> None:
        raise SystemExit("crash between the two transactions")

    store.split_applied = crash
    with pytest.raises(SystemExit):
        store.apply([(1, cmds.Put(b"k", b"v").encode())])
    env.close()
    again = _mvcc(tmp_path)  # "restart": index 1 counts as applied, its write is gone
    assert again.applied_index() == 1 and again.get(b"k") is None
    assert again.apply([(1, cmds.Put(b"k", b"v").encode())])[0].skipped


@pytest.mark.parametrize("bug", [False, True])
def test_no_noop_read_wait_serves_reads_at_a_stale_commit_index(bug: bool) -> None:
    net = Net([1, 2, 3], bugs=frozenset({"read_before_noop"} if bug else ()))
    net.nodes[1].campaign()
    while net.nodes[1].role != Role.LEADER:
        net.flush()
        m = net.inbox.pop(0)
        net.nodes[m.to].step(m)
    net.isolate(1)
    net.inbox.clear()
    leader = net.nodes[1]
    noop = leader.log.last_index()
    assert leader.log.committed < noop
    leader.read_index(b"r")
    assert bool(leader.pending_read_index) is not bug
    net.heal()
    net.tick_all(2)
    [(index, ctx)] = net.reads[1]
    assert ctx == b"r" and (index < noop) is bug


def test_revision_from_unsynced_meta_rewinds_the_revision_after_a_restart(tmp_path: Path) -> None:
    """The side-car lags the data, so a restart rewinds the revision counter and the
    next write is given a revision an earlier write already has. raftkv's history is
    append-only (LMDB append=True), so that write cannot overwrite the older one: the
    store reports its own data as inconsistent (CorruptionError escapes apply, nothing
    of the batch is written) and the node stops (fail-stop) rather than diverge, which
    the harness's recovery and convergence checkers see. Without the side-car nothing
    rewinds."""
    meta = tmp_path / "revision.meta"
    env = open_env(tmp_path / "db", 1 * GiB)
    store = MvccStore(env, quota_bytes=64 << 20, revision_meta=meta)
    n = REVISION_META_EVERY + 5
    store.apply([(i, cmds.Put(f"k{i}".encode(), b"v").encode()) for i in range(1, n + 1)])
    assert store.current_revision() == n + 1
    assert int(meta.read_text()) == n + 1  # flushed once the batch crossed the threshold
    store.apply([(i, cmds.Put(f"k{i}".encode(), b"v").encode()) for i in range(n + 1, n + 4)])
    assert store.current_revision() == n + 4 and int(meta.read_text()) == n + 1
    env.close()
    shutil.copytree(tmp_path / "db", tmp_path / "peer")  # an unmutated replica, same data
    env = open_env(tmp_path / "db", 1 * GiB)  # "kill -9 and restart"
    again = MvccStore(env, quota_bytes=64 << 20, revision_meta=meta)
    assert again.applied_index() == n + 3  # the applied index is right...
    assert again.current_revision() == n + 1  # ...the revision counter is not
    writes = [cmds.Put(b"new", b"v"), cmds.DeleteRange(b"k1"), cmds.Put(b"k2", b"w")]
    entries = [(n + 4 + i, c.encode()) for i, c in enumerate(writes)]
    with pytest.raises(CorruptionError):  # revision n + 2 is taken
        again.apply(entries)
    assert again.applied_index() == n + 3 and again.current_revision() == n + 1
    assert again.get(b"new") is None and again.get(b"k1") is not None
    env.close()
    env = open_env(tmp_path / "peer", 1 * GiB)
    plain = MvccStore(env, quota_bytes=64 << 20)  # the unmutated store ignores the side-car
    assert plain.current_revision() == n + 4
    assert [r.revision for r in plain.apply(entries)] == [n + 5, n + 6, n + 7]
    assert plain.get(b"new") is not None and plain.get(b"k1") is None
    env.close()
