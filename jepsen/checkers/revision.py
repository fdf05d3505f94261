"""C2: revision order — cheap, exact checks on the revisions raftkv returns.

Every write returns its global revision; every read returns the key's mod_revision
and the header revision. Because values are unique, these facts pin down the order
of effects without any search:

* no two different writes share a revision, and one value is never seen at two
  mod_revisions (a duplicated apply or a resurrected write);
* per key, if A returned before B was invoked, B's key revision >= A's (strictly for
  a write) — a violation is a stale read or a lost write;
* globally, header revisions never go backwards in real time;
* a read's mod_revision never exceeds its header revision.
"""

from __future__ import annotations

from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import Op


def _key_rev(o: Op) -> int | None:
    if o.f in ("write", "cas"):
        return o.result.get("revision")
    if o.f == "read":
        return o.result.get("mod_revision", 0)
    return None


def check(ops: list[Op]) -> CheckResult:
    oks = [o for o in ops if o.type == "ok" and o.f in ("read", "write", "cas")]
    if not oks:
        return CheckResult("revision-order", UNKNOWN, "no ok register ops")
    violations: list[dict[str, Any]] = []

    by_rev: dict[int, Op] = {}
    rev_of_value: dict[tuple[str | None, Any], tuple[int, Op]] = {}
    for o in oks:
        if o.f in ("write", "cas"):
            r = o.result.get("revision")
            if r is None:
                continue
            v = o.value[1] if o.f == "cas" else o.value
            other = by_rev.get(r)
            if other is not None and other is not o:
                violations.append({"rule": "duplicate revision", "revision": r, "ops": [other, o]})
            by_rev[r] = o
            rev_of_value.setdefault((o.key, v), (r, o))
    for o in oks:
        if o.f != "read" or o.value is None:
            continue
        m, h = o.result.get("mod_revision"), o.result.get("revision")
        if m is not None and h is not None and m > h:
            violations.append({"rule": "mod_revision > header", "ops": [o]})
        known = rev_of_value.get((o.key, o.value))
        if known is not None and m is not None and known[0] != m:
            violations.append(
                {"rule": "value seen at two revisions", "revision": m, "ops": [known[1], o]}
            )
        elif known is None:
            rev_of_value[(o.key, o.value)] = (m or 0, o)

    # Real-time sweep: ops sorted by return feed running maxima that every op invoked
    # later must respect.
    by_ret = sorted(oks, key=lambda o: o.ret)
    key_max: dict[str | None, tuple[int, Op]] = {}
    hdr_max: tuple[int, Op] | None = None
    j = 0
    for b in sorted(oks, key=lambda o: o.call):
        while j < len(by_ret) and by_ret[j].ret < b.call:
            a = by_ret[j]
            j += 1
            kr = _key_rev(a)
            if kr is not None and (a.key not in key_max or kr > key_max[a.key][0]):
                key_max[a.key] = (kr, a)
            hr = a.result.get("revision")
            if hr is not None and (hdr_max is None or hr > hdr_max[0]):
                hdr_max = (hr, a)
        strict = b.f in ("write", "cas")
        kr = _key_rev(b)
        prev = key_max.get(b.key)
        if kr is not None and prev is not None and (kr < prev[0] or (strict and kr == prev[0])):
            violations.append({"rule": "key revision went back in real time", "ops": [prev[1], b]})
        hr = b.result.get("revision")
        if hr is not None and hdr_max is not None and hr < hdr_max[0]:
            violations.append({"rule": "header revision went back", "ops": [hdr_max[1], b]})

    if violations:
        first = violations[0]
        witness = {**first, "ops": [o.brief() for o in first["ops"]]}
        return CheckResult(
            "revision-order",
            INVALID,
            f"{len(violations)} violations (first: {first['rule']})",
            {"witness": witness, "count": len(violations)},
        )
    return CheckResult("revision-order", VALID, f"{len(oks)} ok ops, 0 violations")
