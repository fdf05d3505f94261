"""C4: after the final heal every node holds the same data at the same revision.

Input is what the harness collected once the cluster was healthy: each node's
/v1/status and a serializable (local) read of every key the workload touched, so a
replica that silently diverged cannot hide behind the leader.
"""

from __future__ import annotations

from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult


def check(
    statuses: dict[str, dict[str, Any] | None], reads: dict[str, dict[str, Any] | None]
) -> CheckResult:
    missing = sorted(n for n in statuses if statuses[n] is None or reads.get(n) is None)
    if missing:
        return CheckResult("convergence", UNKNOWN, f"no final status/reads from {missing}")
    applied = {n: s["applied"] for n, s in statuses.items() if s}
    revs = {n: s["revision"] for n, s in statuses.items() if s}
    problems: list[str] = []
    if len(set(applied.values())) != 1:
        problems.append(f"applied differs {applied}")
    if len(set(revs.values())) != 1:
        problems.append(f"revision differs {revs}")
    names = sorted(reads)
    base = reads[names[0]] or {}
    diffs: list[dict[str, Any]] = []
    for n in names[1:]:
        other = reads[n] or {}
        for k in sorted(set(base) | set(other)):
            if base.get(k) != other.get(k):
                diffs.append({"key": k, names[0]: base.get(k), n: other.get(k)})
    if diffs:
        problems.append(f"{len(diffs)} keys differ")
    if problems:
        return CheckResult("convergence", INVALID, "; ".join(problems), {"diffs": diffs[:10]})
    return CheckResult(
        "convergence",
        VALID,
        f"{len(names)} nodes agree: applied={next(iter(applied.values()))} "
        f"revision={next(iter(revs.values()))} keys={len(base)}",
    )
