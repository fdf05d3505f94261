"""C8: effects under a lock — the protected register must show no lost update.

Every critical section reads the protected list, appends its own unique token and
writes the list back. If mutual exclusion held for the *effects* (not merely in the
holders' beliefs), the register behaves like a serial log of appends, so:

* every acknowledged append is in the final list, exactly once (else: lost update);
* no token appears that nobody appended, or whose append definitely failed;
* two acknowledged appends that did not overlap in real time appear in that order.

Appends with unknown outcome (``info``) may be present or absent, but at most once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult, combine
from jepsen.history import Op


def check(ops: list[Op], key: str) -> CheckResult:
    appends = {o.value: o for o in ops if o.f == "append" and o.key == key}
    reads = [o for o in ops if o.f == "read" and o.key == key and o.type == "ok"]
    finals = [r for r in reads if r.result.get("final")]
    problems: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in reads:
        for tok, n in Counter(r.value or []).items():
            if n > 1:
                problems["duplicate"].append({"token": tok, "read": r.brief()})
            a = appends.get(tok)
            if a is None:
                problems["unexpected"].append({"token": tok, "read": r.brief()})
            elif a.type == "fail":
                problems["failed append visible"].append({"token": tok, "append": a.brief()})
    acked = sorted((a for a in appends.values() if a.type == "ok"), key=lambda a: a.ret)
    for a in acked:
        for r in reads:
            if r.call > a.ret and a.value not in (r.value or []):
                problems["lost update"].append({"append": a.brief(), "read": r.brief()})
                break
    for r in finals:
        pos = {tok: i for i, tok in enumerate(r.value or [])}
        present = [a for a in acked if a.value in pos]
        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                if a.ret < b.call and pos[a.value] > pos[b.value]:
                    problems["order"].append({"first": a.brief(), "second": b.brief()})
    if problems:
        summ = ", ".join(f"{k} {len(v)}" for k, v in sorted(problems.items()))
        return CheckResult(
            "lock", INVALID, summ, {"witness": {k: v[:3] for k, v in problems.items()}}
        )
    if acked and not finals:
        return CheckResult("lock", UNKNOWN, "no final read of the protected register")
    info = sum(1 for a in appends.values() if a.type == "info")
    return CheckResult(
        "lock",
        VALID,
        f"{len(acked)} acked critical sections all applied once, in order; {info} unknown",
    )


def merge(results: list[CheckResult]) -> CheckResult:
    """One verdict for several independent locks (each checked on its own register):
    the worst verdict, with every lock's summary."""
    verdict = combine(results)
    if len(results) == 1:
        return results[0]
    summary = "; ".join(f"lock {i}: {r.summary}" for i, r in enumerate(results))
    witness = {
        f"lock {i}: {kind}": items
        for i, r in enumerate(results)
        for kind, items in r.details.get("witness", {}).items()
    }
    return CheckResult("lock", verdict, summary, {"witness": witness} if witness else {})
