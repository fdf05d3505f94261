"""C5: watch streams against each other and against the acknowledged writes.

Input: write ops (``write`` of one key, ``txn`` of several keys in one revision,
``delete``) whose ``ok`` results carry their revision, and ``watch`` ops — one per
connection — whose value is ``{"watcher", "start", "msgs": [[rev, events], ...]}``
with events as ``[type, key, value, mod_revision]``. A watcher resumes each new
connection at its last delivered revision + 1, so its connections together must read
like one uninterrupted stream from its first start revision:

* ordered and unique: revisions strictly increase (``rev == last`` inside one
  connection is a revision split across messages, across connections a duplicate);
* reliable: every acknowledged write whose revision lies in the watcher's window
  (first start .. last delivered, or .. the newest acked write once the watcher ran
  its final catch-up connection) is delivered;
* atomic: a delivered revision holds every event of the write at that revision;
* agreement: two watchers that deliver the same revision deliver the same events,
  and every event is a write somebody attempted, not one that definitely failed, at
  the revision the write was acknowledged with.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import Op


def _puts(o: Op) -> list[tuple[str, str]]:
    """(key, value) pairs a write op puts."""
    if o.f == "write":
        return [(str(o.key), str(o.value))]
    if o.f == "txn":
        return [(str(k), str(v)) for k, v in o.value]
    return []


def _events_of(o: Op) -> int:
    """How many events an acknowledged write produced at its revision."""
    if o.f == "delete":
        return int(o.result.get("deleted", 0))
    return len(_puts(o))


def check(ops: list[Op], prefix: str) -> CheckResult:
    writes = [o for o in ops if o.f in ("write", "txn", "delete")]
    acked = {int(o.result["revision"]): o for o in writes if o.type == "ok" and _events_of(o)}
    by_value: dict[str, tuple[Op, str]] = {}
    for o in writes:
        for k, v in _puts(o):
            by_value[v] = (o, k)
    deletes: dict[str, list[Op]] = defaultdict(list)
    for o in writes:
        if o.f == "delete":
            deletes[str(o.key)].append(o)
    sessions: dict[Any, list[Op]] = defaultdict(list)
    for o in ops:
        if o.f == "watch" and o.type == "ok":
            sessions[o.value["watcher"]].append(o)
    problems: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: dict[int, tuple[Any, list[Any]]] = {}
    top = max(acked, default=0)
    delivered_total = 0

    def bad(kind: str, **detail: Any) -> None:
        problems[kind].append(detail)

    for w, conns in sorted(sessions.items(), key=lambda kv: str(kv[0])):
        conns.sort(key=lambda o: o.call)
        first = int(conns[0].value["start"])
        last = first - 1
        got: set[int] = set()
        for c in conns:
            for rev, evs in c.value["msgs"]:
                delivered_total += 1
                if rev < last:
                    bad("out of order", watcher=w, revision=rev, after=last)
                elif rev == last and rev in got:
                    kind = "split revision" if _in(c, rev) else "duplicate"
                    bad(kind, watcher=w, revision=rev)
                last = max(last, rev)
                got.add(rev)
                if rev in seen and seen[rev][1] != evs:
                    bad("disagreement", revision=rev, a=seen[rev], b=[w, evs])
                seen.setdefault(rev, (w, evs))
                _against_writes(rev, evs, by_value, deletes, bad, w)
                a = acked.get(rev)
                if a is not None and len(evs) < _events_of(a):
                    bad("partial revision", watcher=w, revision=rev, events=evs, write=a.brief())
        end = max(last, top) if any(c.result.get("final") for c in conns) else last
        for rev in sorted(acked):
            if first <= rev <= end and rev not in got:
                bad("gap", watcher=w, revision=rev, write=acked[rev].brief(), window=[first, end])
                break
    if problems:
        summ = ", ".join(f"{k} {len(v)}" for k, v in sorted(problems.items()))
        return CheckResult(
            "watch", INVALID, summ, {"witness": {k: v[:3] for k, v in problems.items()}}
        )
    if not sessions:
        return CheckResult("watch", UNKNOWN, "no watch connections recorded")
    return CheckResult(
        "watch",
        VALID,
        f"{len(sessions)} watchers, {sum(map(len, sessions.values()))} connections, "
        f"{delivered_total} revisions delivered, {len(acked)} acked writes up to rev {top}",
    )


def _in(c: Op, rev: int) -> bool:
    """Whether ``rev`` was already delivered earlier in the same connection ``c``."""
    return sum(1 for r, _ in c.value["msgs"] if r == rev) > 1


def _against_writes(
    rev: int,
    evs: list[Any],
    by_value: dict[str, tuple[Op, str]],
    deletes: dict[str, list[Op]],
    bad: Any,
    w: Any,
) -> None:
    for typ, key, value, mod in evs:
        if typ == "PUT":
            hit = by_value.get(str(value))
            if hit is None or hit[1] != key:
                bad("phantom", watcher=w, revision=rev, event=[typ, key, value])
                continue
            o = hit[0]
            if o.type == "fail":
                bad("failed write visible", watcher=w, revision=rev, write=o.brief())
            elif o.type == "ok" and int(o.result["revision"]) != rev:
                bad("revision mismatch", watcher=w, revision=rev, write=o.brief())
            if mod != rev:
                bad("revision mismatch", watcher=w, revision=rev, event=[typ, key, value, mod])
        else:
            ok = any(
                d.type == "info" or (d.type == "ok" and int(d.result["revision"]) == rev)
                for d in deletes.get(key, [])
            )
            if not ok:
                bad("phantom", watcher=w, revision=rev, event=[typ, key, value])
