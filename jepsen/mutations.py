"""``python -m jepsen mutation-suite``: each planted raftkv bug in its designated
scenario for N seeds, plus unmutated control runs of the same scenarios.

The table follows research notes §6.9 (jepsen-and-checkers.md), adapted to this
harness's workloads and nemesis shapes. A mutation is *caught* in a run when the run's
verdict is invalid; unknown and harness errors are recorded but never count as caught.
Exit 0 only if every gating mutation is caught in >= 3 of 5 runs (scaled to --seeds)
and every control run is valid.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jepsen.report import _times
from jepsen.runner import RunConfig
from raftkv.progress import Progress

DETECT_FRACTION = 3 / 5  # §6.9: invalid in >= 3 of 5 seeds
CONTROL_SEED_BASE = 1000  # control seeds differ from mutant seeds 0..N-1


@dataclass(frozen=True)
class Scenario:
    mutation: str
    workload: str
    nemesis: str
    expect: str  # checker(s) that should catch it
    gating: bool = True  # False: tracked, but not part of the exit code
    note: str = ""
    # Per-scenario run length and load (None: the suite's --time / --rate). A bug whose
    # window is a short overlap (say, two leaders for < 1 s) needs more faults and ops
    # per run than the default; its controls run with the same settings.
    time: float | None = None
    rate: float | None = None
    op_timeout: float | None = None  # client timeout per request (None: the run's 3 s)
    concurrency: int | None = None  # clients (None: the suite's --concurrency)

    @property
    def scenario(self) -> str:
        extra = "".join(f" {k}={v:g}" for k, v in self._overrides().items())
        return f"{self.workload} x {self.nemesis}{extra}"

    def _overrides(self) -> dict[str, float | int]:
        pairs = (
            ("time", self.time),
            ("rate", self.rate),
            ("op_timeout", self.op_timeout),
            ("concurrency", self.concurrency),
        )
        return {k: v for k, v in pairs if v is not None}

    def config(self, base: dict[str, Any], seed: int, mutated: bool) -> RunConfig:
        """The run of this scenario: planted (mutated) or an unmutated control."""
        over = self._overrides()
        return RunConfig(
            workload=self.workload,
            nemesis=self.nemesis,
            mutations=self.mutation if mutated else "",
            **{**base, **over, "seed": seed},
        )


TABLE: list[Scenario] = [
    Scenario(
        "follower-local-reads",
        "register",
        "partition:isolate-one,partition:isolate-leader",
        "linearizable, revision-order",
        note="a node cut off from the rest: as a follower it falls behind the majority "
        "(a bare partition rotates through bridge and one-way shapes that may cut no "
        "follower off from the leader)",
    ),
    Scenario(
        "leader-reads-no-readindex",
        "register",
        "lag-elect:slow-isolated-leader",
        "linearizable, revision-order",
        note="the isolated leader's clock runs at a quarter, so it believes it leads for "
        "seconds after the majority elected another; a 0.5 s client timeout keeps its "
        "workers reading instead of stuck on writes",
        time=40,
        rate=100,
        op_timeout=0.5,
    ),
    Scenario(
        "no-noop-read-wait",
        "register",
        "lag-elect:commit-unknown",
        "revision-order, linearizable",
        note="a frame trap leaves the surviving follower holding acked writes it does not "
        "know are committed; after the leader is killed the lagging node's append acks "
        "are held 1 s, so the new leader's no-op takes that long to commit",
        time=25,
        rate=200,
        concurrency=20,
    ),
    Scenario(
        "ack-before-fsync",
        "set",
        "stall-kill:after_send_before_persist",
        "set (lost elements), convergence",
        time=25,
        note="every follower stalls between its ack and its fsync, then the whole cluster "
        "is killed, followers first",
    ),
    Scenario(
        "no-persist-term-vote",
        "register",
        "lag-elect:stale-leader-restart",
        "linearizable, revision-order, convergence",
        note="as stale-leader, but the victim is killed -9 and restarted before the old "
        "leader's held appends reach it: it must come back in the new leader's term",
        time=20,
        rate=100,
        concurrency=10,
    ),
    Scenario(
        "double-vote",
        "set",
        "lag-elect:twin-candidates",
        "set (lost), convergence, recovery",
        note="the leader is cut off while both followers hold the same log; each one's "
        "pre-vote grant to the other is held until both granted: two candidates in one term",
        time=20,
        rate=100,
        concurrency=10,
    ),
    Scenario(
        "skip-log-uptodate-check",
        "set",
        "lag-elect:kill-leader",
        "set (lost, stale), convergence",
        time=25,
        note="a follower kept behind, then healed as the leader is killed; the others' "
        "vote requests are dropped, so it is the only candidate",
    ),
    Scenario(
        "stale-term-accepted",
        "register",
        "lag-elect:stale-leader",
        "linearizable, revision-order, convergence",
        note="the isolated old leader's appends are held, then released to a follower that "
        "holds the new leader's acked writes but not their commit; the new leader is "
        "killed (register: blind writes reach a new leader before its no-op commits)",
        time=20,
        rate=100,
        concurrency=10,
    ),
    Scenario(
        "figure8-commit",
        "register",
        "lag-elect:figure8",
        "convergence, recovery",
        note="Raft's Figure 8 scripted with frame filters: the re-elected old leader's "
        "appends reach the third node without its no-op; then a node with a newer last "
        "term is elected and overwrites the old-term entries that node acknowledged",
        time=25,
        rate=100,
        concurrency=10,
    ),
    Scenario(
        "truncate-on-stale-append",
        "set",
        "lag-elect:stale-append",
        "set (lost), convergence",
        note="a frame trap re-delivers the append before the last one, 50 ms after the "
        "follower acked the last; then the leader is killed and the lagging node healed",
        time=20,
        rate=100,
        concurrency=10,
    ),
    Scenario(
        "non-atomic-apply",
        "set",
        "failpoint:between_state_and_applied",
        "convergence, set (lost)",
        note="the failpoint crashes one node between the two LMDB txns",
    ),
    Scenario(
        "no-dedup",
        "register-retry",
        "pause",
        "linearizable, revision-order",
        note="client retries with one request id on the next node after a 1 s timeout",
        time=40,
    ),
    Scenario("watch-resume-skip", "watch", "none", "watch (resumable)"),
    Scenario("watch-split-revision", "watch", "none", "watch (atomic revisions)"),
    Scenario(
        "lease-no-ttl-refresh",
        "lease",
        "leader:transfer",
        "lease",
        time=30,
        note="a leader transfer: a new leader with no outage, while every client reads",
    ),
    Scenario(
        "revision-from-unsynced-meta",
        "register",
        "kill",
        "convergence, recovery",
        note="the append-only history refuses the reused revision: the replica stops",
    ),
]
BY_NAME = {s.mutation: s for s in TABLE}


def needed(seeds: int) -> int:
    """Runs that must be invalid: 3 of 5, scaled (at least 1)."""
    return max(1, math.ceil(DETECT_FRACTION * seeds - 1e-9))


def outcome(code: int, summ: dict[str, Any]) -> dict[str, Any]:
    """What one run contributes: verdict, failing checkers, time to detect (the
    earliest op time in the first invalid checker's witness, s into the run)."""
    failed = [c["name"] for c in summ.get("checkers", []) if c.get("verdict") == "invalid"]
    w = summ.get("witness")
    times = _times(w.get("witness")) if isinstance(w, dict) else []
    return {
        "code": code,
        "verdict": str(summ.get("verdict", "harness-error")),
        "failed": failed,
        "detect_s": round(min(times), 2) if times else None,
        "dir": summ.get("dir"),
    }


def aggregate(
    plan: list[Scenario], mutant: dict[str, list[dict[str, Any]]], seeds: int
) -> list[dict[str, Any]]:
    rows = []
    for s in plan:
        runs = mutant.get(s.mutation, [])
        caught = [r for r in runs if r["verdict"] == "invalid"]
        by: dict[str, int] = {}
        for r in caught:
            for c in r["failed"]:
                by[c] = by.get(c, 0) + 1
        times = [r["detect_s"] for r in caught if r["detect_s"] is not None]
        ok = len(caught) >= needed(seeds)
        rows.append(
            {
                "mutation": s.mutation,
                "scenario": s.scenario,
                "expect": s.expect,
                "runs": len(runs),
                "detected": len(caught),
                "caught_by": by,
                "median_s": round(statistics.median(times), 2) if times else None,
                "gating": s.gating,
                "pass": ok or not s.gating,
                "note": s.note,
                "verdicts": [r["verdict"] for r in runs],
            }
        )
    return rows


def control_plan(plan: list[Scenario], n: int) -> list[tuple[Scenario, int]]:
    """n unmutated runs spread round-robin over the plan's distinct scenarios."""
    scen: dict[str, Scenario] = {}
    for s in plan:
        scen.setdefault(s.scenario, s)
    distinct = list(scen.values())
    return [(distinct[i % len(distinct)], CONTROL_SEED_BASE + i) for i in range(n)]


def render(rows: list[dict[str, Any]], controls: list[dict[str, Any]]) -> str:
    lines = [
        "| mutation | scenario | runs | detected | caught by | median time | gate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        by = ", ".join(f"{k} ({v})" for k, v in sorted(r["caught_by"].items())) or "-"
        med = f"{r['median_s']:.1f}s" if r["median_s"] is not None else "-"
        gate = ("PASS" if r["pass"] else "FAIL") if r["gating"] else "not gating"
        if r["note"]:
            gate += f": {r['note']}"
        lines.append(
            f"| {r['mutation']} | {r['scenario']} | {r['runs']} | "
            f"{r['detected']}/{r['runs']} | {by} | {med} | {gate} |"
        )
    valid = sum(1 for c in controls if c["verdict"] == "valid")
    lines.append("")
    lines.append(f"controls (unmutated): {valid}/{len(controls)} valid")
    for c in controls:
        if c["verdict"] != "valid":
            lines.append(
                f"  control {c['scenario']} seed {c['seed']}: {c['verdict']} "
                f"{c['failed']} {c['dir']}"
            )
    return "\n".join(lines)


def exit_code(rows: list[dict[str, Any]], controls: list[dict[str, Any]]) -> int:
    ok = all(r["pass"] for r in rows) and all(c["verdict"] == "valid" for c in controls)
    return 0 if ok else 1


def suite(
    base: dict[str, Any],
    seeds: int = 5,
    only: list[str] | None = None,
    controls: int = 20,
    runner: Callable[[RunConfig], tuple[int, dict[str, Any]]] | None = None,
) -> int:
    if runner is None:
        from jepsen.runner import run as runner
    unknown = [m for m in only or [] if m not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown mutations {unknown}; known: {sorted(BY_NAME)}")
    plan = [BY_NAME[m] for m in only] if only else list(TABLE)
    out = Path(base.get("store", "store")) / f"mutation-suite-{time.strftime('%Y%m%dT%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    base = {**base, "store": out / "runs"}
    mutant: dict[str, list[dict[str, Any]]] = {}
    cplan = control_plan(plan, controls)
    progress = Progress("mutation-suite", len(plan) * seeds + len(cplan), unit="runs")
    for s in plan:
        for seed in range(seeds):
            o = outcome(*runner(s.config(base, seed, True)))
            mutant.setdefault(s.mutation, []).append(o)
            # A mutant run "fails" when the mutation went unnoticed.
            progress.update(failed=int(o["verdict"] == "valid"), note=s.mutation)
    ctl: list[dict[str, Any]] = []
    for s, seed in cplan:
        o = outcome(*runner(s.config(base, seed, False)))
        ctl.append({**o, "scenario": s.scenario, "seed": seed})
        progress.update(failed=int(o["verdict"] != "valid"), note=f"control {s.scenario}")
    progress.close()
    rows = aggregate(plan, mutant, seeds)
    table = render(rows, ctl)
    code = exit_code(rows, ctl)
    (out / "table.md").write_text(table + "\n")
    (out / "results.json").write_text(
        json.dumps(
            {
                "seeds": seeds,
                "needed": needed(seeds),
                "rows": rows,
                "controls": ctl,
                "runs": mutant,
                "exit": code,
            },
            indent=1,
            default=str,
        )
    )
    print("\n" + table)
    print(f"\nmutation-suite: {'PASS' if code == 0 else 'FAIL'}  exit={code}  {out}/")
    return code
