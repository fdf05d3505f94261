"""The extra nemeses: kill of a majority/all, clock skew, membership, failpoints.

Fast tests pin the schedule and spelling; each real run (3 nodes, ~12 s) fires one
fault at a known time through ``jepsen.runner.run`` and checks both that the verdict
is valid and that the fault really happened (pids changed, the member list changed,
the node reported the skewed clock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jepsen.nemesis import SHAPES, Fault, Nemesis, nemesis_env, schedule, valid_kind
from jepsen.runner import RunConfig, run
from raftkv.testmode import FAILPOINTS


def test_new_kinds_and_shapes_are_valid() -> None:
    for k in ("kill:majority", "kill:all", "clock", "clock:bump", "clock:drift"):
        assert valid_kind(k), k
    for k in ("clock:strobe", "membership:remove-readd", "membership:replace", "failpoint"):
        assert valid_kind(k), k
    for fp in FAILPOINTS:
        assert valid_kind(f"failpoint:{fp}"), fp
    assert valid_kind("leader") and valid_kind("leader:transfer")
    assert valid_kind("stall-kill:after_send_before_persist") and valid_kind("lag-elect")
    assert not valid_kind("failpoint:nonsense")
    assert not valid_kind("clock:leap")
    assert not valid_kind("kill:power")  # documented as not provided


def test_test_mode_env_only_when_needed() -> None:
    assert nemesis_env("kill,pause,partition,link,membership") == {}
    assert nemesis_env("kill,clock") == {"RAFTKV_TEST_MODE": "1"}
    assert nemesis_env("failpoint:between_state_and_applied") == {"RAFTKV_TEST_MODE": "1"}


def test_mix_schedule_is_seeded_and_uses_every_kind() -> None:
    kinds = ["kill", "pause", "partition", "link", "clock", "membership", "failpoint"]
    a = schedule(kinds, 600, 3)
    assert a == schedule(kinds, 600, 3)
    assert a != schedule(kinds, 600, 4)
    assert {f.kind for f in a} == set(kinds)
    for f in a:
        assert f.shape in SHAPES[f.kind]
        assert f.start + f.duration <= 597
    pinned = schedule(["kill:all", "clock:strobe"], 120, 1)
    assert {(f.kind, f.shape) for f in pinned} == {("kill", "all"), ("clock", "strobe")}


def _run(tmp_path: Path, workload: str, nemesis: str, fault: Fault) -> dict[str, Any]:
    code, summary = run(
        RunConfig(
            workload=workload,
            nemesis=nemesis,
            time=12,
            seed=1,
            store=tmp_path,
            faults=[fault],
        )
    )
    assert code == 0, summary.get("checkers") or summary.get("error")
    assert len(summary["windows"]) == 1, "the nemesis never fired"
    win: dict[str, Any] = summary["windows"][0]
    assert "error" not in win["detail"] and "undo_error" not in win["detail"], win
    return win


@pytest.mark.slow
def test_kill_all_restarts_every_node(tmp_path: Path) -> None:
    win = _run(tmp_path, "register", "kill:all", Fault(2.0, 3.0, "kill", "all", 1))
    before, after = win["detail"]["pids_before"], win["detail"]["pids_after"]
    assert sorted(before) == sorted(after) == ["n1", "n2", "n3"]
    assert all(after[n] and after[n] != before[n] for n in before)


@pytest.mark.slow
def test_kill_majority_restarts_two_of_three(tmp_path: Path) -> None:
    win = _run(tmp_path, "set", "kill:majority", Fault(2.0, 3.0, "kill", "majority", 5))
    assert len(win["targets"]) == 2
    before, after = win["detail"]["pids_before"], win["detail"]["pids_after"]
    assert all(after[n] and after[n] != before[n] for n in win["targets"])


@pytest.mark.slow
@pytest.mark.parametrize(("shape", "workload"), [("drift", "lease"), ("bump", "register")])
def test_clock_skew_is_seen_by_the_node_and_reset(
    tmp_path: Path, shape: str, workload: str
) -> None:
    win = _run(tmp_path, workload, "clock", Fault(2.0, 5.0, "clock", shape, 3))
    seen = win["detail"]["observed"]
    if shape == "drift":
        assert seen["rate"] != 1.0 and 0.5 <= seen["rate"] <= 2.0
    else:
        assert 500 <= abs(seen["offset_ms"]) <= 5000
    assert win["detail"]["reset"] == {"offset_ms": 0.0, "rate": 1.0}


@pytest.mark.slow
def test_clock_strobe_flips(tmp_path: Path) -> None:
    win = _run(tmp_path, "watch", "clock", Fault(2.0, 4.0, "clock", "strobe", 2))
    assert win["detail"]["flips"] >= 5


@pytest.mark.slow
def test_membership_remove_readd(tmp_path: Path) -> None:
    win = _run(tmp_path, "register", "membership", Fault(2.0, 3.0, "membership", "remove-readd", 4))
    d = win["detail"]
    node = win["targets"][0]
    assert d["removed"] == node and node not in d["members_after_remove"]
    assert d["added"] == node and d["promoted"] and d["id"] > 3  # ids are never reused
    assert d["members"] == ["n1", "n2", "n3"]


@pytest.mark.slow
def test_membership_replace(tmp_path: Path) -> None:
    win = _run(tmp_path, "set", "membership", Fault(2.0, 3.0, "membership", "replace", 4))
    d = win["detail"]
    assert d["added"] == "n4" and d["promoted"]
    assert d["members"] == sorted({"n1", "n2", "n3", "n4"} - {win["targets"][0]})


@pytest.mark.slow
def test_failpoint_crash_and_restart(tmp_path: Path) -> None:
    # after_persist_before_send is on every node's Ready path: it fires at once.
    fault = Fault(2.0, 3.0, "failpoint", "after_persist_before_send", 1)
    win = _run(tmp_path, "register", "failpoint", fault)
    d = win["detail"]
    node = win["targets"][0]
    assert d["crashed"] and d["exit_code"] == 137
    assert d["pids_after"][node] != d["pids_before"][node]


async def test_a_skipped_removal_adds_nothing_back(tmp_path: Path) -> None:
    # The membership fault's undo must not add a member when its apply removed none
    # (it once added n4 next to a still-present n3: a 4-voter cluster).
    class _NoCluster:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"cluster.{name} touched")

    nem = Nemesis(_NoCluster(), tmp_path / "nemesis.jsonl", lambda: 0.0)  # type: ignore[arg-type]
    f = Fault(0, 1, "membership", "replace", 0)
    assert await nem._undo(f, ["n3"], {"skipped": "cluster not fully healthy"}) == {}
    nem.close()


class _Names:
    """Just enough of a Cluster for target selection of leaderless shapes."""

    def __init__(self, n: int) -> None:
        self.names = [f"n{i + 1}" for i in range(n)]


@pytest.mark.parametrize(("size", "shape", "count"), [(3, "majority", 2), (5, "majority", 3)])
async def test_kill_majority_and_all_targets(size: int, shape: str, count: int) -> None:
    nem = Nemesis.__new__(Nemesis)
    nem.cluster = _Names(size)  # type: ignore[assignment]
    for pick in range(20):
        t = await nem._targets(Fault(0, 1, "kill", shape, pick))
        assert len(set(t)) == count
        t_all = await nem._targets(Fault(0, 1, "kill", "all", pick))
        assert sorted(t_all) == sorted(nem.cluster.names)
