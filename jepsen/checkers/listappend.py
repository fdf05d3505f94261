"""C4 list-append: Elle's idea cut down to one key, single-op "transactions".

Every append writes the whole list (read + CAS on mod_revision), so every read, and
every list an ``ok`` append wrote, reveals the key's full version order up to that
point. That makes checking polynomial and exact for linearizability of an append-only
list (``anomalies`` is empty exactly when the brute-force search in the tests finds a
linearization):

* one order: all observed lists of a key are prefixes of the longest one ("divergent");
* no element twice in one list ("duplicate"); none that nobody appended
  ("unexpected"); none whose append definitely failed ("failed append visible");
* an ``ok`` append's list ends with its own element ("malformed"); an ``info``
  append whose element is visible wrote exactly the list it attempted ("info append
  wrote another list") — the CAS would have refused anything else;
* real time: if op a completed before op b was invoked, a's list is no longer than
  b's ("stale read"), and no list holds an element whose append was invoked only
  after the observing op had completed ("element before invoke");
* durability: every final read holds every ``ok`` append ("lost");
* revisions, when recorded: lists of equal length carry one mod_revision and longer
  lists larger ones ("revision order").

``info`` appends may or may not appear; their ``ret`` is infinite, so they never
precede anything in real time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult
from jepsen.history import Op

NAME = "list-append"


def observed(o: Op) -> list[Any] | None:
    """The list an op saw (read) or definitely wrote (ok append); None otherwise."""
    if o.type != "ok":
        return None
    if o.f == "read":
        return list(o.value or [])
    if o.f == "append":
        lst = o.result.get("list")
        return None if lst is None else list(lst)
    return None


def _mod(o: Op) -> int | None:
    """The mod_revision of the list an observation carries, when recorded."""
    if o.f == "read":
        m = o.result.get("mod_revision")
    else:
        m = o.result.get("revision")
    return None if m is None else int(m)


def anomalies(ops: list[Op]) -> dict[str, list[dict[str, Any]]]:
    """Every anomaly found, by kind; empty means the history is linearizable."""
    problems: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_key: dict[Any, list[Op]] = defaultdict(list)
    for o in ops:
        if o.f in ("append", "read"):
            by_key[o.key].append(o)
    for key, kops in sorted(by_key.items(), key=lambda kv: str(kv[0])):
        _check_key(key, kops, problems)
    return problems


def _check_key(key: Any, ops: list[Op], problems: dict[str, list[dict[str, Any]]]) -> None:
    def bad(kind: str, **detail: Any) -> None:
        problems[kind].append({"key": key, **detail})

    appends: dict[Any, Op] = {}
    for o in ops:
        if o.f == "append":
            appends[o.value] = o
    obs = [(o, lst) for o in ops if (lst := observed(o)) is not None]

    for o, lst in obs:
        for e, n in Counter(lst).items():
            if n > 1:
                bad("duplicate", element=e, op=o.brief())
            a = appends.get(e)
            if a is None:
                bad("unexpected", element=e, op=o.brief())
            elif a.type == "fail":
                bad("failed append visible", element=e, append=a.brief(), op=o.brief())
            elif o.ret < a.call:
                bad("element before invoke", element=e, append=a.brief(), op=o.brief())
        if o.f == "append" and (not lst or lst[-1] != o.value):
            bad("malformed", op=o.brief())

    # One total order: every observed list is a prefix of the longest.
    longest_op, longest = max(obs, key=lambda t: len(t[1]), default=(None, []))
    for o, lst in obs:
        if longest[: len(lst)] != lst:
            assert longest_op is not None
            bad("divergent", a=o.brief(), a_list=lst, b=longest_op.brief(), b_list=longest)
            break

    # An info append that took effect wrote exactly what it attempted.
    pos = {e: i for i, e in enumerate(longest)}
    for a in appends.values():
        tried = a.result.get("list")
        if a.type == "info" and tried is not None and a.value in pos:
            if longest[: pos[a.value] + 1] != list(tried):
                bad("info append wrote another list", append=a.brief(), order=longest)

    # Real time: sweep ops by invocation, tracking the longest list completed before.
    by_ret = sorted(obs, key=lambda t: t[0].ret)
    j, best = 0, None
    for o, lst in sorted(obs, key=lambda t: t[0].call):
        while j < len(by_ret) and by_ret[j][0].ret < o.call:
            if best is None or len(by_ret[j][1]) > len(best[1]):
                best = by_ret[j]
            j += 1
        if best is not None and len(best[1]) > len(lst):
            kind = "lost" if o.result.get("final") else "stale read"
            bad(kind, earlier=best[0].brief(), later=o.brief(), earlier_len=len(best[1]))

    finals = [(o, lst) for o, lst in obs if o.f == "read" and o.result.get("final")]
    for a in appends.values():
        if a.type != "ok":
            continue
        for o, lst in finals:
            if a.value not in lst:
                bad("lost", element=a.value, append=a.brief(), final=o.brief())
                break

    # Revisions: length -> mod_revision must be a strictly increasing function.
    mods: dict[int, tuple[int, Op]] = {}
    for o, lst in obs:
        m = _mod(o)
        if m is None:
            continue
        prev = mods.setdefault(len(lst), (m, o))
        if prev[0] != m:
            bad("revision order", a=prev[1].brief(), b=o.brief(), length=len(lst))
    ordered = sorted(mods.items())
    for (n1, (m1, o1)), (n2, (m2, o2)) in zip(ordered, ordered[1:], strict=False):
        if m1 >= m2:
            bad("revision order", a=o1.brief(), b=o2.brief(), lengths=[n1, n2])


def check(ops: list[Op]) -> CheckResult:
    problems = anomalies(ops)
    if problems:
        summ = ", ".join(f"{k} {len(v)}" for k, v in sorted(problems.items()))
        return CheckResult(
            NAME, INVALID, summ, {"witness": {k: v[:3] for k, v in problems.items()}}
        )
    appends = [o for o in ops if o.f == "append"]
    acked_keys = {o.key for o in appends if o.type == "ok"}
    finals = [o for o in ops if o.f == "read" and o.type == "ok" and o.result.get("final")]
    if not acked_keys <= {o.key for o in finals}:
        return CheckResult(NAME, UNKNOWN, "no final read for some key with acked appends")
    counts = Counter(o.type for o in appends)
    present = {e for o in finals for e in (o.value or [])}
    recovered = sum(1 for o in appends if o.type == "info" and o.value in present)
    reads = sum(1 for o in ops if o.f == "read" and o.type == "ok")
    longest = max((len(o.value or []) for o in finals), default=0)
    return CheckResult(
        NAME,
        VALID,
        f"{len({o.key for o in appends})} keys, {counts['ok']} acked appends all present "
        f"once in one order; {counts['fail']} failed, none visible; {counts['info']} unknown "
        f"({recovered} present); {reads} reads; longest list {longest}",
    )
