"""C1: linearizability of the register workload, P-compositional by key.

A key-value map is a product of independent registers, so the history is
linearizable iff each key's sub-history is (Herlihy–Wing locality). Each key gets its
own deadline; running out of time makes that key — and the verdict — unknown.
"""

from __future__ import annotations

import time
from collections import defaultdict

from jepsen.checkers import wgl
from jepsen.checkers.models import Register, prepare
from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import Op


def check(ops: list[Op], per_key_seconds: float = 20.0) -> CheckResult:
    by_key: dict[str | None, list[Op]] = defaultdict(list)
    for o in prepare([o for o in ops if o.f in ("read", "write", "cas")]):
        by_key[o.key].append(o)
    if not by_key:
        return CheckResult("linearizable", UNKNOWN, "no register ops to check")
    model = Register()
    invalid: dict[str, wgl.WglResult] = {}
    unknown: list[str] = []
    t0 = time.monotonic()
    for key, kops in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        res = wgl.check(model, kops, deadline=time.monotonic() + per_key_seconds)
        if res.verdict == INVALID:
            invalid[str(key)] = res
        elif res.verdict == UNKNOWN:
            unknown.append(str(key))
    took = time.monotonic() - t0
    n = len(by_key)
    if invalid:
        key, res = next(iter(invalid.items()))
        witness = {
            "key": key,
            "last_legal_prefix_tail": [o.brief() for o in res.longest[-5:]],
            "cannot_linearize": [o.brief() for o in res.stuck],
        }
        return CheckResult(
            "linearizable",
            INVALID,
            f"{len(invalid)}/{n} keys not linearizable (first: {key}); {took:.1f}s",
            {"invalid_keys": sorted(invalid), "unknown_keys": unknown, "witness": witness},
        )
    if unknown:
        return CheckResult(
            "linearizable",
            UNKNOWN,
            f"{len(unknown)}/{n} keys timed out after {per_key_seconds}s each",
            {"unknown_keys": unknown},
        )
    return CheckResult("linearizable", VALID, f"{n}/{n} keys linearizable; {took:.1f}s", {})
