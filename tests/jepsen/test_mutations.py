"""The mutation-suite table and its aggregation, on fake run results (no cluster)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from jepsen import cli, mutations
from jepsen.nemesis import valid_kind
from jepsen.runner import RunConfig
from jepsen.workloads import WORKLOADS

PLANTED = {
    "follower-local-reads",
    "leader-reads-no-readindex",
    "no-noop-read-wait",
    "ack-before-fsync",
    "no-persist-term-vote",
    "double-vote",
    "skip-log-uptodate-check",
    "figure8-commit",
    "truncate-on-stale-append",
    "non-atomic-apply",
    "no-dedup",
    "watch-resume-skip",
    "watch-split-revision",
    "lease-no-ttl-refresh",
    "revision-from-unsynced-meta",
    "stale-term-accepted",
}


def test_table_covers_every_mutation_with_a_runnable_scenario() -> None:
    assert set(mutations.BY_NAME) == PLANTED
    for s in mutations.TABLE:
        assert s.workload in WORKLOADS
        assert all(valid_kind(k) for k in s.nemesis.split(","))
    assert mutations.BY_NAME["no-dedup"].workload == "register-retry"


def _summ(verdict: str, failed: tuple[str, ...] = (), t: float = 4.0) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "checkers": [{"name": c, "verdict": "invalid"} for c in failed]
        + [{"name": "recovery", "verdict": "valid"}],
        "witness": {"checker": failed[0], "witness": {"op": {"call": t, "ret": t + 1}}}
        if failed
        else None,
        "dir": "x",
    }


def _fake(detect: dict[str, int], seen: list[RunConfig], ctl_bad: int = 0) -> Any:
    """Mutation m is invalid on seeds < detect[m]; control seed ctl_bad+1000-1 fails."""

    def run(cfg: RunConfig) -> tuple[int, dict[str, Any]]:
        seen.append(cfg)
        if cfg.mutations:
            if cfg.seed < detect.get(cfg.mutations, 5):
                return 1, _summ("invalid", ("linearizable", "revision-order"), 2.0 + cfg.seed)
            return 0, _summ("valid")
        if ctl_bad and cfg.seed == mutations.CONTROL_SEED_BASE + ctl_bad - 1:
            return 1, _summ("invalid", ("set",))
        return 0, _summ("valid")

    return run


def _go(tmp_path: Path, run: Any, **kw: Any) -> tuple[int, dict[str, Any], str]:
    code = mutations.suite({"store": tmp_path, "time": 5.0}, runner=run, **kw)
    d = next(tmp_path.glob("mutation-suite-*"))
    return code, json.loads((d / "results.json").read_text()), (d / "table.md").read_text()


def test_all_caught_and_controls_valid_passes(tmp_path: Path) -> None:
    seen: list[RunConfig] = []
    code, res, table = _go(tmp_path, _fake({}, seen))
    assert code == 0
    muts = [c for c in seen if c.mutations]
    assert len(muts) == 5 * len(PLANTED)
    assert {c.seed for c in muts} == set(range(5))
    ctl = [c for c in seen if not c.mutations]
    assert len(ctl) == 20 and len({c.seed for c in ctl}) == 20
    row = next(r for r in res["rows"] if r["mutation"] == "follower-local-reads")
    assert row["detected"] == 5 and row["caught_by"] == {"linearizable": 5, "revision-order": 5}
    assert row["median_s"] == 4.0  # witness call times 2..6
    scen = "register x partition:isolate-one,partition:isolate-leader"
    assert f"| follower-local-reads | {scen} | 5 | 5/5 |" in table
    assert "controls (unmutated): 20/20 valid" in table


def test_two_of_five_fails_three_of_five_passes(tmp_path: Path) -> None:
    only = ["watch-resume-skip"]
    assert _go(tmp_path / "a", _fake({"watch-resume-skip": 2}, []), only=only)[0] == 1
    assert _go(tmp_path / "b", _fake({"watch-resume-skip": 3}, []), only=only)[0] == 0


def test_non_gating_mutation_never_fails_the_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fig8 = "figure8-commit"
    tracked = dataclasses.replace(mutations.BY_NAME[fig8], gating=False)
    monkeypatch.setitem(mutations.BY_NAME, fig8, tracked)
    code, res, table = _go(tmp_path, _fake({fig8: 0}, []), only=[fig8], controls=1)
    assert code == 0 and res["rows"][0]["detected"] == 0
    assert "not gating" in table


def test_one_invalid_control_fails_the_suite(tmp_path: Path) -> None:
    code, res, table = _go(tmp_path, _fake({}, [], ctl_bad=3), only=["double-vote"], controls=4)
    assert code == 1
    assert "controls (unmutated): 3/4 valid" in table


def test_unknown_and_harness_error_are_not_caught(tmp_path: Path) -> None:
    def run(cfg: RunConfig) -> tuple[int, dict[str, Any]]:
        if cfg.mutations:
            return (2, _summ("unknown")) if cfg.seed % 2 else (3, {"verdict": "harness-error"})
        return 0, _summ("valid")

    code, res, _ = _go(tmp_path, run, only=["lease-no-ttl-refresh"], controls=1)
    assert code == 1 and res["rows"][0]["detected"] == 0
    assert res["rows"][0]["verdicts"] == ["harness-error", "unknown"] * 2 + ["harness-error"]


def test_needed_scales_with_seeds() -> None:
    assert [mutations.needed(n) for n in (1, 2, 5, 10)] == [1, 2, 3, 6]


def test_controls_spread_over_distinct_scenarios() -> None:
    names = ("revision-from-unsynced-meta", "figure8-commit", "truncate-on-stale-append")
    got = mutations.control_plan([mutations.BY_NAME[m] for m in names], 4)
    assert [(s.workload, s.nemesis) for s, _ in got] == [
        ("register", "kill"),
        ("register", "lag-elect:figure8"),
        ("set", "lag-elect:stale-append"),
        ("register", "kill"),
    ]
    assert [seed for _, seed in got] == [1000, 1001, 1002, 1003]


def test_scenario_overrides_reach_mutant_and_control_runs() -> None:
    s = mutations.BY_NAME["leader-reads-no-readindex"]
    assert s.scenario == "register x lag-elect:slow-isolated-leader time=40 rate=100 op_timeout=0.5"
    noop = mutations.BY_NAME["no-noop-read-wait"]
    assert noop.config({"concurrency": 6}, 0, True).concurrency == 20
    mutant = s.config({"time": 20.0, "rate": 50.0}, 3, True)
    control = s.config({"time": 20.0, "rate": 50.0}, 1000, False)
    assert (mutant.time, mutant.rate, mutant.mutations, mutant.seed) == (40, 100, s.mutation, 3)
    assert (control.time, control.rate, control.mutations) == (40, 100, "")
    assert control.op_timeout == mutant.op_timeout == 0.5


def test_cli_rejects_unknown_mutation_and_etcd() -> None:
    with pytest.raises(SystemExit):
        cli.main(["mutation-suite", "--only", "no-such-bug"])
    with pytest.raises(SystemExit):
        cli.main(["mutation-suite", "--db", "etcd"])
