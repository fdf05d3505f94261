"""``python -m jepsen matrix``: every workload x every nemesis x 3 and 5 nodes x seeds.

The short suite (``make jepsen``) shows the harness works; the matrix is the
evidence: each cell is one full run (fresh cluster, seeded fault schedule, heal,
final reads, every checker) at a load high enough that faults land in the middle
of thousands of operations. The matrix passes only if every cell is valid —
unknown (a checker gave up) and harness errors count against it, never for it.

Cells are stored one JSON file each under ``<out>/cells/``, so an interrupted
matrix resumes where it stopped (``--fresh`` starts over), and ``--jobs 2`` runs two
cells at once in separate processes. ``--db both`` runs the raftkv and etcd cells
side by side and adds a table of availability and latency under the same faults.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from jepsen import stats
from jepsen.history import load_events, pair
from jepsen.runner import RunConfig
from raftkv.progress import Progress

WORKLOADS = ["register", "set", "list-append", "watch", "lease", "fenced-lock"]
# Matrix column -> the nemesis spec a run gets. Each kind draws its shapes from the
# seed (kill: one, minority, majority, leader, all; partition: six shapes; ...).
NEMESES: dict[str, str] = {
    "none": "none",
    "kill": "kill",
    "pause": "pause",
    "partition": "partition",
    "link": "link",
    "clock": "clock",
    "membership": "membership",
    "mix": "kill,pause,partition,link,clock,membership",
}
# Faults the etcd cluster cannot take: the clock hook and the membership nemesis
# drive raftkv's test-mode endpoints and join procedure.
ETCD_ONLY_WITHOUT = {"clock", "membership"}


@dataclass(frozen=True)
class Cell:
    db: str
    nodes: int
    workload: str
    nemesis: str  # a NEMESES key
    seed: int

    @property
    def name(self) -> str:
        return f"{self.db}-{self.nodes}n-{self.workload}-{self.nemesis}-s{self.seed}"

    def spec(self) -> str:
        spec = NEMESES[self.nemesis]
        if self.db == "etcd":
            kinds = [k for k in spec.split(",") if k.split(":")[0] not in ETCD_ONLY_WITHOUT]
            spec = ",".join(kinds) or "none"
        return spec


def plan(
    dbs: list[str], nodes: list[int], workloads: list[str], nemeses: list[str], seeds: list[int]
) -> list[Cell]:
    cells = []
    for db in dbs:
        for n in nodes:
            for w in workloads:
                for nem in nemeses:
                    if db == "etcd" and nem in ETCD_ONLY_WITHOUT:
                        continue
                    cells += [Cell(db, n, w, nem, s) for s in seeds]
    return cells


def _run_cell(cell: Cell, base: dict[str, Any], log: str) -> dict[str, Any]:
    """One cell in a worker process, its console output to ``log``."""
    from jepsen.runner import run

    cfg = RunConfig(
        workload=cell.workload,
        nemesis=cell.spec(),
        nodes=cell.nodes,
        seed=cell.seed,
        db=cell.db,
        **base,
    )
    t0 = time.monotonic()
    with open(log, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        code, summ = run(cfg)
    return {
        "cell": cell.__dict__,
        "code": code,
        "verdict": summ.get("verdict", "harness-error"),
        "ops": summ.get("ops", 0),
        "counts": summ.get("counts", {}),
        "stats": summ.get("stats", {}),
        "failed": [c["name"] for c in summ.get("checkers", []) if c.get("verdict") != "valid"],
        "faults": len(summ.get("windows", [])),
        "fault_kinds": sorted({f"{w['kind']}:{w['shape']}" for w in summ.get("windows", [])}),
        "dir": summ.get("dir"),
        "wall_s": round(time.monotonic() - t0, 1),
    }


def execute(cells: list[Cell], base: dict[str, Any], out: Path, jobs: int) -> list[dict[str, Any]]:
    """Run the cells not yet stored under ``out/cells``; return every cell's result."""
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    todo = [c for c in cells if not (out / "cells" / f"{c.name}.json").exists()]
    print(f"matrix: {len(cells)} cells, {len(cells) - len(todo)} already done, {len(todo)} to run")
    t0 = time.monotonic()
    progress = Progress("matrix", len(todo), unit="cells", stream=sys.stdout, tty=False, every=0)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futs = {
            pool.submit(_run_cell, c, base, str(out / "logs" / f"{c.name}.log")): c for c in todo
        }
        for i, fut in enumerate(as_completed(futs), 1):
            c = futs[fut]
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - a crashed worker is a harness error
                res = {"cell": c.__dict__, "code": 3, "verdict": "harness-error", "error": str(e)}
            (out / "cells" / f"{c.name}.json").write_text(json.dumps(res, indent=1))
            s = res.get("stats", {})
            print(
                f"[{time.monotonic() - t0:7.0f}s] {i}/{len(todo)} {c.name}: "
                f"{str(res['verdict']).upper()} ops={res.get('ops', 0)} "
                f"ops/s={s.get('ops_per_s', 0)} avail={s.get('availability', 0)} "
                f"{' '.join(res.get('failed', []))}",
                flush=True,
            )
            progress.update(failed=int(res.get("verdict") != "valid"))
    return [json.loads((out / "cells" / f"{c.name}.json").read_text()) for c in cells]


RATE_BAR = 200  # ops/s every cell must reach (issue 7's pass bar)


def restat(result: dict[str, Any]) -> None:
    """Recompute a stored cell's availability/latency from its history, so cells run
    by an older harness are measured the same way as new ones."""
    d = Path(str(result.get("dir")))
    if not (d / "history.jsonl").exists() or not (d / "results.json").exists():
        return
    windows = json.loads((d / "results.json").read_text()).get("windows", [])
    result["stats"] = stats.summarize(pair(load_events(d / "history.jsonl")), windows)


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def render(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per (db, nodes, workload, nemesis) with its seeds' verdicts,
    then the totals, then (both dbs present) raftkv vs etcd under the same faults."""
    groups: dict[tuple[str, int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        c = r["cell"]
        groups[(c["db"], c["nodes"], c["workload"], c["nemesis"])].append(r)
    lines = [
        "| db | nodes | workload | nemesis | verdicts (per seed) | ops/run | ops/s (min) |"
        " answered % |"
        " faults | fault shapes seen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (db, n, w, nem), rs in groups.items():
        rs.sort(key=lambda r: r["cell"]["seed"])
        verdicts = " ".join(str(r["verdict"]) for r in rs)
        st = [r.get("stats") or {} for r in rs]
        ops = statistics.fmean([r.get("ops", 0) for r in rs])
        rate = statistics.fmean([s.get("ops_per_s", 0) for s in st])
        slowest = min(s.get("ops_per_s", 0) for s in st)
        avail = statistics.fmean([100 * s.get("availability", 0) for s in st])
        faults = sum(r.get("faults", 0) for r in rs)
        shapes = sorted({k for r in rs for k in r.get("fault_kinds", [])})
        lines.append(
            f"| {db} | {n} | {w} | {nem} | {verdicts} | {ops:.0f} | {rate:.0f} ({slowest:.0f}) |"
            f" {avail:.1f} |"
            f" {faults} | {', '.join(shapes) or '-'} |"
        )
    tally: dict[str, int] = defaultdict(int)
    for r in results:
        tally[str(r["verdict"])] += 1
    total_ops = sum(r.get("ops", 0) for r in results)
    lines += [
        "",
        f"cells: {len(results)}; ops: {total_ops}; "
        + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())),
    ]
    for db in sorted({k[0] for k in groups}):
        mine = [r for r in results if r["cell"]["db"] == db]
        rates = [(r.get("stats") or {}).get("ops_per_s", 0) for r in mine]
        shapes = {k for r in mine for k in r.get("fault_kinds", [])}
        lines.append(
            f"{db}: {sum(x >= RATE_BAR for x in rates)}/{len(mine)} cells at >= {RATE_BAR} "
            f"ops/s (slowest {min(rates):.0f}); fewest ops in a history "
            f"{min(r.get('ops', 0) for r in mine)}; {len(shapes)} fault shapes seen"
        )
    if len({k[0] for k in groups}) > 1:
        lines += ["", side_by_side(groups)]
    return "\n".join([*(pivot(results, db) for db in sorted({k[0] for k in groups})), *lines])


def pivot(results: list[dict[str, Any]], db: str) -> str:
    """One line per workload, one column per nemesis: valid cells / cells run, and
    the mean ops per history (all sizes and seeds of that db)."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        c = r["cell"]
        if c["db"] == db:
            cells[(c["workload"], c["nemesis"])].append(r)
    seen = {c[0] for c in cells}
    workloads = [w for w in WORKLOADS if w in seen] + sorted(seen - set(WORKLOADS))
    nemeses = [n for n in NEMESES if any(k[1] == n for k in cells)]
    lines = [
        f"{db}: valid / runs (mean ops per history)",
        "",
        "| workload | " + " | ".join(nemeses) + " |",
        "|---|" + "---|" * len(nemeses),
    ]
    for w in workloads:
        row = []
        for n in nemeses:
            rs = cells.get((w, n), [])
            ok = sum(1 for r in rs if r["verdict"] == "valid")
            ops = statistics.fmean([r.get("ops", 0) for r in rs]) if rs else 0
            row.append(f"{ok}/{len(rs)} ({ops:.0f})" if rs else "-")
        lines.append(f"| {w} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def side_by_side(groups: dict[tuple[str, int, str, str], list[dict[str, Any]]]) -> str:
    """Availability and latency, raftkv vs etcd, per (nodes, workload, nemesis) both ran,
    over the seeds both ran (the same fault plans; raftkv's mix adds clock and
    membership faults that etcd cannot take)."""
    lines = [
        "| nodes | workload | nemesis | raftkv answered % | etcd answered % | raftkv p50/p99 ms |"
        " etcd p50/p99 ms | raftkv longest gap s | etcd longest gap s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def agg(rs: list[dict[str, Any]]) -> dict[str, float | None]:
        st = [r.get("stats") or {} for r in rs]

        def mean(k: str) -> float | None:
            vals = [s[k] for s in st if s.get(k) is not None]
            return statistics.fmean(vals) if vals else None

        return {k: mean(k) for k in ("availability", "p50_ms", "p99_ms", "longest_gap_s")}

    for (db, n, w, nem), rs in groups.items():
        other = groups.get(("etcd", n, w, nem))
        if db != "raftkv" or other is None:
            continue
        # Same seeds on both sides: a seed fixes the fault plan (kinds, shapes, times).
        common = {r["cell"]["seed"] for r in rs} & {r["cell"]["seed"] for r in other}
        a = agg([r for r in rs if r["cell"]["seed"] in common])
        b = agg([r for r in other if r["cell"]["seed"] in common])

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.1f}"

        lines.append(
            f"| {n} | {w} | {nem} | {pct(a['availability'])} | {pct(b['availability'])} | "
            f"{_fmt(a['p50_ms'])} / {_fmt(a['p99_ms'])} | {_fmt(b['p50_ms'])} / "
            f"{_fmt(b['p99_ms'])} | {_fmt(a['longest_gap_s'], '.2f')} | "
            f"{_fmt(b['longest_gap_s'], '.2f')} |"
        )
    return "\n".join(lines)


def main(
    base: dict[str, Any],
    dbs: list[str],
    nodes: list[int],
    workloads: list[str],
    nemeses: list[str],
    seeds: list[int],
    out: Path,
    jobs: int,
    fresh: bool,
) -> int:
    if fresh and (out / "cells").exists():
        for p in (out / "cells").glob("*.json"):
            p.unlink()
    cells = plan(dbs, nodes, workloads, nemeses, seeds)
    execute(cells, {**base, "store": out / "runs"}, out, jobs)
    # The table covers every stored cell, so a raftkv matrix and an etcd one run into
    # the same --out directory end up side by side.
    results = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    for r in results:
        restat(r)
    table = render(results)
    (out / "matrix.md").write_text(table + "\n")
    (out / "matrix.json").write_text(json.dumps(results, indent=1))
    print("\n" + table)
    bad = [r for r in results if r["verdict"] != "valid"]
    print(f"\nmatrix: {'PASS' if not bad else 'FAIL'} ({len(bad)} cells not valid)  {out}/")
    for r in bad:
        print(f"  {Cell(**r['cell']).name}: {r['verdict']} {r.get('failed')} {r.get('dir')}")
    sys.stdout.flush()
    return 0 if not bad else 1
