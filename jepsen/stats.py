"""Availability and latency of one run, computed from its history and fault windows.

Checkers say whether a store kept its promises; these numbers say what it cost to
keep them: how many client ops succeeded, how slow they were, how long the store
was unavailable, and how fast it came back after each fault. They are reported
next to the verdict and compared between raftkv and etcd under the same faults
(``python -m jepsen matrix --db both``).

Availability counts the ops the store *answered*: every ``ok``, and a ``fail`` that
is the store's definite answer to the question asked (a compare that failed, 412, or a
fence that no longer holds) — a CAS losing a race is the store working, not the store
being down. Refusals, timeouts and 503s are unavailability.

Only workload ops count: the final reads after the heal (processes numbered from
``FINAL_PROCESS``) would inflate availability with reads of a healed cluster.
"""

from __future__ import annotations

import statistics
from typing import Any

from jepsen.history import INF, Op
from jepsen.workloads.base import FINAL_PROCESS

ANSWERED_FAIL = ("412", "HTTP 412", "fence")  # error prefixes of a store's definite "no"


def answered(o: Op) -> bool:
    return o.type == "ok" or (o.type == "fail" and (o.error or "").startswith(ANSWERED_FAIL))


def _pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    i = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return round(sorted_ms[i], 2)


def longest_gap(ok_times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] in which no op completed ok."""
    pts = [start, *sorted(t for t in ok_times if start <= t <= end), end]
    return round(max(b - a for a, b in zip(pts, pts[1:], strict=False)), 3)


def recovery_times(ok_times: list[float], windows: list[dict[str, Any]]) -> list[float]:
    """Per fault window: seconds from its end to the first ok completion after it."""
    done = sorted(ok_times)
    out = []
    for w in windows:
        nxt = next((t for t in done if t >= w["stop"]), None)
        if nxt is not None:
            out.append(round(nxt - w["stop"], 3))
    return out


def summarize(ops: list[Op], windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput, availability (answered / all), latency percentiles of ok ops in ms,
    the longest window without an ok op, and the worst recovery after a fault."""
    work = [o for o in ops if o.process < FINAL_PROCESS]
    if not work:
        return {"ops": 0}
    start = min(o.call for o in work)
    end = max([o.call for o in work] + [o.ret for o in work if o.ret != INF])
    ok = [o for o in work if o.type == "ok"]
    lat = sorted((o.ret - o.call) * 1000 for o in ok)
    ok_times = [o.ret for o in ok]
    rec = recovery_times(ok_times, windows)
    span = max(end - start, 1e-9)
    return {
        "ops": len(work),
        "ops_per_s": round(len(work) / span, 1),
        "ok_per_s": round(len(ok) / span, 1),
        "availability": round(sum(1 for o in work if answered(o)) / len(work), 4),
        "p50_ms": _pct(lat, 0.50),
        "p99_ms": _pct(lat, 0.99),
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
        "longest_gap_s": longest_gap(ok_times, start, end),
        "max_recovery_s": max(rec) if rec else None,
    }


def line(s: dict[str, Any]) -> str:
    """One printable line, e.g. for the run's console output."""
    if not s.get("ops"):
        return "availability: no workload ops"

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    rec = s.get("max_recovery_s")
    return (
        f"availability: {100 * s['availability']:.1f}% answered of {s['ops']} ops "
        f"({s['ops_per_s']:.0f} ops/s); latency p50 {ms(s['p50_ms'])} ms "
        f"p99 {ms(s['p99_ms'])} ms; longest gap {s['longest_gap_s']:.2f} s; "
        f"worst recovery {'-' if rec is None else f'{rec:.2f} s'}"
    )
