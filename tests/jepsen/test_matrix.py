"""The matrix's plan, resume and tables, and the per-run availability/latency numbers,
on fake results (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jepsen import cli, matrix, stats
from jepsen.history import INF, make_op
from jepsen.workloads.base import FINAL_PROCESS


def test_stats_count_workload_ops_only_and_measure_gaps_and_recovery() -> None:
    ops = [
        make_op("read", None, 0.0, 0.010),
        make_op("write", 1, 1.0, 1.020),
        make_op("write", 2, 2.0, None, "info"),  # never returned
        make_op("write", 3, 2.5, 2.6, "fail"),  # refused: unavailable
        make_op("cas", 4, 2.7, 2.8, "fail"),  # compare failed: answered
        make_op("read", None, 6.0, 6.004),  # first ok after the fault ended at 5.5
        make_op("read", None, 7.0, 7.1, process=FINAL_PROCESS),  # final read: ignored
    ]
    ops[4].error = "412"
    ops[3].error = "ClientConnectorError: refused"
    assert stats.answered(make_op("add", 1, 0, 1, "fail")) is False
    assert stats.answered(make_op("add", 1, 0, 1, "fail", result=None)) is False
    op = make_op("add", 1, 0, 1, "fail")
    op.error = "HTTP 412"
    assert stats.answered(op)
    s = stats.summarize(ops, [{"kind": "partition", "start": 2.0, "stop": 5.5}])
    assert s["ops"] == 6
    assert s["availability"] == round(4 / 6, 4)
    assert s["longest_gap_s"] == 4.984  # from 1.020 to 6.004
    assert s["max_recovery_s"] == 0.504
    assert s["p50_ms"] == 10.0 and s["p99_ms"] == 20.0
    assert "66.7% answered of 6 ops" in stats.line(s)
    assert stats.summarize([], []) == {"ops": 0}
    assert stats.recovery_times([1.0], [{"start": 2.0, "stop": 3.0}]) == []
    assert INF not in [o.ret for o in ops if o.type == "ok"]


def test_plan_covers_every_workload_and_nemesis_and_skips_what_etcd_cannot_take() -> None:
    cells = matrix.plan(["raftkv", "etcd"], [3, 5], ["register"], list(matrix.NEMESES), [1, 2])
    raftkv = [c for c in cells if c.db == "raftkv"]
    etcd = [c for c in cells if c.db == "etcd"]
    assert len(raftkv) == 2 * len(matrix.NEMESES) * 2
    assert {c.nemesis for c in etcd} == set(matrix.NEMESES) - matrix.ETCD_ONLY_WITHOUT
    mix = next(c for c in etcd if c.nemesis == "mix")
    assert "clock" not in mix.spec() and "membership" not in mix.spec() and "kill" in mix.spec()
    assert next(c for c in raftkv if c.nemesis == "mix").spec() == matrix.NEMESES["mix"]
    assert len({c.name for c in cells}) == len(cells)


def _result(cell: matrix.Cell, verdict: str, avail: float, p50: float) -> dict[str, Any]:
    return {
        "cell": cell.__dict__,
        "code": 0 if verdict == "valid" else 1,
        "verdict": verdict,
        "ops": 4000,
        "stats": {
            "ops_per_s": 210.0,
            "availability": avail,
            "p50_ms": p50,
            "p99_ms": 5 * p50,
            "longest_gap_s": 1.5,
        },
        "faults": 2,
        "fault_kinds": ["kill:one"],
    }


def test_stored_cells_are_not_rerun_and_the_tables_compare_dbs(tmp_path: Path) -> None:
    cells = matrix.plan(["raftkv", "etcd"], [3], ["register"], ["kill"], [1, 2])
    (tmp_path / "cells").mkdir()
    for c in cells:
        bad = c.db == "raftkv" and c.seed == 2
        res = _result(c, "unknown" if bad else "valid", 0.9 if c.db == "raftkv" else 0.8, 4.0)
        (tmp_path / "cells" / f"{c.name}.json").write_text(json.dumps(res))
    # Every cell is stored, so nothing is spawned: a resumed matrix only reports.
    code = matrix.main(
        {}, ["raftkv", "etcd"], [3], ["register"], ["kill"], [1, 2], tmp_path, 1, False
    )
    assert code == 1  # unknown is never a pass
    table = (tmp_path / "matrix.md").read_text()
    assert (
        "| raftkv | 3 | register | kill | valid unknown | 4000 | 210 (210) | 90.0 | 4 | kill:one |"
        in table
    )
    assert "cells: 4; ops: 16000; unknown: 1, valid: 3" in table
    assert "raftkv: 2/2 cells at >= 200 ops/s (slowest 210); fewest ops in a history 4000" in table
    assert "| 3 | register | kill | 90.0 | 80.0 | 4.0 / 20.0 | 4.0 / 20.0 | 1.50 | 1.50 |" in table


def test_cli_rejects_unknown_cells_and_sizes(capsys: Any) -> None:
    for argv in (
        ["matrix", "--workloads", "nope"],
        ["matrix", "--nemeses", "meteor"],
        ["matrix", "--nodes", "4"],
    ):
        try:
            cli.main(argv)
        except SystemExit as e:
            assert e.code == 2
        else:
            raise AssertionError(f"{argv} accepted")
    assert "unknown" in capsys.readouterr().err
