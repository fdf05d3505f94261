"""``python -m jepsen run|suite|matrix|mutation-suite``: one run, the short standard suite
with a table, the long matrix (jepsen/matrix.py), or the mutation suite
(jepsen/mutations.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jepsen import matrix, mutations
from jepsen.nemesis import KINDS, SHAPES, valid_kind
from jepsen.netns import missing_requirements
from jepsen.runner import RunConfig, run
from jepsen.workloads import WORKLOADS

SUITE = [(w, n) for w in ("register", "set") for n in ("none", "kill", "pause", "partition")]
SUITE += [("register", "link"), ("fenced-lock", "pause"), ("fenced-lock", "partition")]
SUITE += [("watch", "kill"), ("watch", "partition"), ("lease", "pause"), ("lease", "kill")]
SUITE += [("list-append", "kill"), ("list-append", "partition")]
# Positive control: serializable reads may be stale by design, so this run must be
# judged invalid; a suite where it passes has a blind harness.
# Likewise a lock without fencing must lose an update when a holder stalls past its
# lease (the workload injects that GC-like stall itself; the pause nemesis adds more).
CONTROLS = [("stale-register", "partition"), ("unfenced-lock", "pause")]

# Mutation controls (raftkv only): a planted raftkv bug (RAFTKV_MUTATIONS) that the
# workload's checker must catch, so a new checker is shown to reject a real history.
MUTANTS = [("watch", "none", "watch-resume-skip"), ("watch", "none", "watch-split-revision")]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=3, choices=[3, 5])
    p.add_argument("--time", type=float, default=20.0, help="seconds of workload")
    p.add_argument("--rate", type=float, default=50.0, help="target ops/s over all workers")
    p.add_argument("--concurrency", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--store", type=Path, default=Path("store"))
    p.add_argument("--db", choices=["raftkv", "etcd"], default="raftkv")
    p.add_argument(
        "--net",
        choices=["proxy", "netns"],
        default="proxy",
        help="network faults via per-link TCP proxies, or network namespaces + iptables (root)",
    )


def _nemesis(s: str) -> str:
    bad = [k for k in s.split(",") if not valid_kind(k)]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown nemesis {bad}; choose from {KINDS}/{SHAPES}")
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m jepsen")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one run")
    _common(r)
    r.add_argument("--workload", choices=sorted(WORKLOADS), default="register")
    r.add_argument(
        "--nemesis",
        type=_nemesis,
        default="none",
        help="comma list of " + ",".join(KINDS) + " (or kind:shape, e.g. partition:bridge)",
    )
    r.add_argument(
        "--mutations", default="", help="raftkv bugs to plant (RAFTKV_MUTATIONS), comma list"
    )
    s = sub.add_parser("suite", help="register and set under none/kill/pause/partition")
    _common(s)
    m = sub.add_parser("mutation-suite", help="each planted bug in its scenario, plus controls")
    _common(m)
    m.add_argument("--seeds", type=int, default=5, help="runs per mutation")
    m.add_argument("--only", default="", help="comma list of mutations (default: all)")
    m.add_argument("--controls", type=int, default=20, help="unmutated runs in total")
    x = sub.add_parser("matrix", help="every workload x nemesis x 3/5 nodes x seeds")
    x.add_argument("--db", choices=["raftkv", "etcd", "both"], default="raftkv")
    x.add_argument("--nodes", default="3,5", help="comma list of cluster sizes")
    x.add_argument("--seeds", type=int, default=2, help="seeds per cell (1..N)")
    x.add_argument("--workloads", default=",".join(matrix.WORKLOADS))
    x.add_argument("--nemeses", default=",".join(matrix.NEMESES))
    x.add_argument("--time", type=float, default=20.0, help="seconds of workload per cell")
    x.add_argument("--rate", type=float, default=250.0, help="target ops/s per cell")
    x.add_argument("--concurrency", type=int, default=12)
    x.add_argument("--jobs", type=int, default=1, help="cells run at once")
    x.add_argument("--out", type=Path, default=Path("store/matrix"))
    x.add_argument("--fresh", action="store_true", help="forget stored cells, run all")
    a = ap.parse_args(argv)
    if a.cmd == "matrix":
        return _matrix(ap, a)
    base = dict(
        nodes=a.nodes,
        time=a.time,
        rate=a.rate,
        concurrency=a.concurrency,
        seed=a.seed,
        store=a.store,
        db=a.db,
        net=a.net,
    )
    if a.net == "netns" and (why := missing_requirements()):
        ap.error(why)
    if a.cmd == "run":
        cfg = RunConfig(workload=a.workload, nemesis=a.nemesis, mutations=a.mutations, **base)
        code, _ = run(cfg)  # type: ignore[arg-type]
        return code
    if a.cmd == "mutation-suite":
        if a.db != "raftkv":
            ap.error("mutation-suite plants raftkv bugs; --db etcd has no meaning here")
        only = [x.strip() for x in a.only.split(",") if x.strip()]
        unknown = [x for x in only if x not in mutations.BY_NAME]
        if unknown:
            ap.error(f"unknown mutations {unknown}; choose from {sorted(mutations.BY_NAME)}")
        return mutations.suite(base, a.seeds, only or None, a.controls)
    return suite(base)


def _matrix(ap: argparse.ArgumentParser, a: argparse.Namespace) -> int:
    workloads = [w for w in a.workloads.split(",") if w]
    nemeses = [n for n in a.nemeses.split(",") if n]
    bad = [w for w in workloads if w not in WORKLOADS] + [
        n for n in nemeses if n not in matrix.NEMESES
    ]
    if bad:
        ap.error(f"unknown workloads/nemeses {bad}")
    nodes = [int(n) for n in a.nodes.split(",")]
    if any(n not in (3, 5) for n in nodes):
        ap.error("--nodes takes 3 and/or 5")
    dbs = ["raftkv", "etcd"] if a.db == "both" else [a.db]
    base = dict(time=a.time, rate=a.rate, concurrency=a.concurrency)
    seeds = list(range(1, a.seeds + 1))
    return matrix.main(base, dbs, nodes, workloads, nemeses, seeds, a.out, a.jobs, a.fresh)


def suite(base: dict[str, object]) -> int:
    """Run SUITE, CONTROLS and (raftkv only) MUTANTS; exit 0 only if every run is
    valid and every control and mutant is invalid."""
    rows: list[tuple[object, ...]] = []
    worst = 0
    plan = SUITE + CONTROLS
    runs = [(w, n, "") for w, n in plan]
    if base.get("db", "raftkv") == "raftkv":
        runs += MUTANTS
    for w, n, m in runs:
        cfg = RunConfig(workload=w, nemesis=n, mutations=m, **base)  # type: ignore[arg-type]
        code, summ = run(cfg)
        c = summ.get("counts", {})
        verdict = str(summ.get("verdict", "harness-error"))
        if m:
            verdict += f" (mutant {m}: expected invalid)"
            code = 0 if code == 1 else max(code, 1)
        elif (w, n) in CONTROLS:
            verdict += " (control: expected invalid)"
            code = 0 if code == 1 else max(code, 1)
        rows.append((w, n, summ.get("ops", 0), c.get("ok", 0), c.get("fail", 0), c.get("info", 0)))
        rows[-1] += (verdict,)
        worst = max(worst, code)
    print(f"\n{'workload':<15}{'nemesis':<11}{'ops':>6}{'ok':>6}{'fail':>6}{'info':>6}  verdict")
    for r in rows:
        print(f"{r[0]:<15}{r[1]:<11}{r[2]:>6}{r[3]:>6}{r[4]:>6}{r[5]:>6}  {r[6]}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
