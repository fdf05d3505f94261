"""C3: the set workload — lost, unexpected, duplicate and stale elements, per key.

An element acknowledged by an ``ok`` add must be in every read of its key invoked
after the ack, final reads included. An element nobody tried to add, or one whose
add definitely ``fail``-ed, must never appear; no read may hold an element twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import Op


def check(ops: list[Op]) -> CheckResult:
    adds: dict[Any, Op] = {}
    for o in ops:
        if o.f == "add":
            adds[o.value] = o
    reads = [o for o in ops if o.f == "read" and o.type == "ok"]
    finals = [o for o in reads if o.result.get("final")]
    problems: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in reads:
        elems = r.value or []
        for e, n in Counter(elems).items():
            if n > 1:
                problems["duplicate"].append({"element": e, "read": r.brief()})
            a = adds.get(e)
            if a is None or a.key != r.key:
                problems["unexpected"].append({"element": e, "read": r.brief()})
            elif a.type == "fail":
                problems["failed add visible"].append({"element": e, "add": a.brief()})
    for a in adds.values():
        if a.type != "ok":
            continue
        for r in reads:
            if r.key == a.key and r.call > a.ret and a.value not in (r.value or []):
                kind = "lost" if r.result.get("final") else "stale read"
                problems[kind].append({"element": a.value, "add": a.brief(), "read": r.brief()})
                break
    acked = sum(1 for a in adds.values() if a.type == "ok")
    info = sum(1 for a in adds.values() if a.type == "info")
    if problems:
        summ = ", ".join(f"{k} {len(v)}" for k, v in sorted(problems.items()))
        witness = {k: v[:3] for k, v in problems.items()}
        return CheckResult("set", INVALID, summ, {"witness": witness})
    keys = {a.key for a in adds.values() if a.type == "ok"}
    if not finals or not keys <= {r.key for r in finals}:
        return CheckResult("set", UNKNOWN, "no final read for some key with acked adds")
    present = set().union(*[set(r.value or []) for r in finals])
    recovered = sum(1 for a in adds.values() if a.type == "info" and a.value in present)
    return CheckResult(
        "set",
        VALID,
        f"{acked} acked adds all present; {info} unknown ({recovered} present); "
        f"{len(finals)} final reads",
    )
