"""C7: lease semantics seen through one key attached to each lease.

Per key (one lease each, key attached by an ``attach`` op right after ``grant``),
with ``TTL`` the granted TTL:

* no premature expiry — a lease renewed by an ``ok`` grant/keepalive ``x`` is alive
  until at least ``x.call + TTL`` (the renewal happened after its invocation), and a
  lease alive at some instant was alive at every earlier instant since its grant. So
  a read invoked after the attach returned and returning before
  ``max(x.call) + TTL - eps`` must see the key, unless a revoke that may have taken
  effect (``ok`` or ``info``) was invoked before the read returned;
* revoke takes effect — a read invoked after an ``ok`` revoke returned sees nothing;
* eventual expiry — a read invoked ``TTL + grace`` after the last renewal *returned*
  sees nothing. The grace covers the leader's revoke round and one failover (a new
  leader gives every lease a fresh TTL); a renewal with unknown outcome can land any
  time, so it disables this clause for its lease. No lease can expire while the
  cluster has no leader, so the bound also moves by every outage inside it: each
  stretch longer than ``OUTAGE_MIN`` in which no op completed ``ok`` on any node
  (every op the workload sends needs a leader). Outages only ever loosen this
  liveness clause; the two safety clauses above never use them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import INF, Op

OUTAGE_MIN = 1.0  # s without any ok op: longer than a healthy cluster ever pauses


def outages(ops: list[Op], min_gap: float = OUTAGE_MIN) -> list[tuple[float, float]]:
    """Stretches of the workload longer than ``min_gap`` with no ok completion. The
    final reads are left out: the harness idles before them on purpose, and that wait
    is not an outage."""
    done = sorted(
        o.ret for o in ops if o.type == "ok" and o.ret != INF and not o.result.get("final")
    )
    return [(a, b) for a, b in zip(done, done[1:], strict=False) if b - a > min_gap]


def expiry_bound(start: float, base: float, gaps: list[tuple[float, float]]) -> float:
    """``start + base`` pushed back by the part of every outage that begins before the
    (growing) bound: time without a leader does not count towards an expiry."""
    bound = start + base
    for a, b in gaps:
        if b <= start:
            continue
        if a >= bound:
            break
        bound += b - max(a, start)
    return bound


def check(ops: list[Op], eps: float = 0.25, grace: float = 6.0) -> CheckResult:
    by_key: dict[str, list[Op]] = defaultdict(list)
    for o in ops:
        if o.key is not None and o.f in ("grant", "attach", "keepalive", "revoke", "read"):
            by_key[o.key].append(o)
    problems: dict[str, list[dict[str, Any]]] = defaultdict(list)
    judged = expiries = 0
    gaps = outages(ops)
    for _key, kops in sorted(by_key.items()):
        grant = next((o for o in kops if o.f == "grant" and o.type == "ok"), None)
        attach = next((o for o in kops if o.f == "attach" and o.type == "ok"), None)
        if grant is None or attach is None:
            continue
        ttl = float(grant.result["ttl"])
        renewals = [grant] + [
            o for o in kops if o.f == "keepalive" and o.type == "ok" and o.result.get("ttl")
        ]
        alive_until = max(x.call for x in renewals) + ttl - eps
        unknown_renewal = any(o.f == "keepalive" and o.type == "info" for o in kops)
        last_ret = max(x.ret for x in renewals)
        dead_after = INF if unknown_renewal else expiry_bound(last_ret, ttl + grace, gaps)
        revokes = [o for o in kops if o.f == "revoke" and o.type in ("ok", "info")]
        for r in kops:
            if r.f != "read" or r.type != "ok" or r.call < attach.ret:
                continue
            judged += 1
            present = r.value is not None
            revoked_maybe = any(v.call < r.ret for v in revokes)
            if not present and r.ret < alive_until and not revoked_maybe:
                problems["premature expiry"].append(
                    {"read": r.brief(), "alive_until": round(alive_until, 3)}
                )
            if present and any(v.type == "ok" and v.ret < r.call for v in revokes):
                problems["visible after revoke"].append({"read": r.brief()})
            if r.call > dead_after:
                expiries += 1
                if present:
                    problems["never expired"].append(
                        {"read": r.brief(), "dead_after": round(dead_after, 3)}
                    )
    if problems:
        summ = ", ".join(f"{k} {len(v)}" for k, v in sorted(problems.items()))
        return CheckResult(
            "lease", INVALID, summ, {"witness": {k: v[:3] for k, v in problems.items()}}
        )
    if not judged:
        return CheckResult("lease", UNKNOWN, "no read of a key with a granted, attached lease")
    return CheckResult(
        "lease",
        VALID,
        f"{len(by_key)} leases, {judged} reads judged, {expiries} past their expiry bound",
    )
