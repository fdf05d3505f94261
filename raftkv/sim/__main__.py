"""`python -m raftkv.sim`: replay one seed, or run a campaign of seeds.

python -m raftkv.sim --seed 1234            # replay exactly, print the trace tail
python -m raftkv.sim --seeds 100000 --jobs 2  # campaign; exit 1 on any violation
python -m raftkv.sim --seeds 500 --bugs commit_old_term  # hunt a planted bug
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from multiprocessing import Pool

from raftkv.progress import Progress
from raftkv.raft.core import PLANTED_BUGS
from raftkv.sim.cluster import SimResult, Violation, run_seed


def _run(
    args: tuple[int, int | None, frozenset[str], frozenset[str]],
) -> SimResult | Violation:
    seed, nodes, bugs, driver_bugs = args
    try:
        return run_seed(seed, nodes=nodes, bugs=bugs, driver_bugs=driver_bugs)
    except Violation as v:
        return v


def replay_command(
    seed: int, nodes: int | None, bugs: frozenset[str], driver_bugs: frozenset[str] = frozenset()
) -> str:
    cmd = f"make sim SEED={seed}"
    extra = []
    if nodes:
        extra.append(f"--nodes {nodes}")
    if bugs:
        extra.append(f"--bugs {','.join(sorted(bugs))}")
    if driver_bugs:
        extra.append(f"--driver-bugs {','.join(sorted(driver_bugs))}")
    if extra:
        cmd = f"python -m raftkv.sim --seed {seed} " + " ".join(extra)
    return cmd


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raftkv.sim", description=__doc__)
    p.add_argument("--seed", type=int, help="run exactly this seed")
    p.add_argument("--seeds", type=int, default=200, help="campaign: seeds 0..N-1")
    p.add_argument("--start", type=int, default=0, help="campaign: first seed")
    p.add_argument("--nodes", type=int, choices=[3, 5], help="default: 3 for even seeds, 5 odd")
    p.add_argument("--bugs", default="", help=f"planted bugs: {','.join(sorted(PLANTED_BUGS))}")
    p.add_argument(
        "--driver-bugs", default="", help="planted Ready-driver bugs: send_before_persist"
    )
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args(argv)
    bugs = frozenset(b for b in a.bugs.split(",") if b)
    driver_bugs = frozenset(b for b in a.driver_bugs.split(",") if b)

    if a.seed is not None:
        out = _run((a.seed, a.nodes, bugs, driver_bugs))
        if isinstance(out, Violation):
            print("\n".join(out.trace))
            print(f"VIOLATION {out}")
            print(f"replay: {replay_command(a.seed, a.nodes, bugs, driver_bugs)}")
            return 1
        print(f"seed {a.seed}: ok  {_summary([out])}")
        return 0

    started = time.monotonic()
    seeds = range(a.start, a.start + a.seeds)
    jobs = [(s, a.nodes, bugs, driver_bugs) for s in seeds]
    progress = Progress("sim", len(jobs), unit="seeds")
    outcomes = []
    with Pool(max(1, a.jobs)) as pool:
        for o in pool.imap(_run, jobs, chunksize=16):
            outcomes.append(o)
            progress.update(failed=int(isinstance(o, Violation)))
    progress.close()
    results = [o for o in outcomes if isinstance(o, SimResult)]
    violations = [o for o in outcomes if isinstance(o, Violation)]
    elapsed = time.monotonic() - started
    print(f"seeds run: {len(outcomes)} in {elapsed:.1f}s  {_summary(results)}")
    print(f"violations: {len(violations)}")
    for v in violations[:20]:
        print(f"  {v}\n    replay: {replay_command(v.seed, a.nodes, bugs, driver_bugs)}")
    return 1 if violations else 0


def _summary(results: list[SimResult]) -> str:
    faults: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        ops.update(r.ops)
    committed = sum(r.committed for r in results)
    return (
        f"faults injected: {sum(faults.values())} {dict(sorted(faults.items()))}  "
        f"ops: {dict(sorted(ops.items()))}  committed entries: {committed}"
    )


if __name__ == "__main__":
    sys.exit(main())
