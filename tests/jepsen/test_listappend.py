"""The list-append checker: anomaly fixtures it must reject, histories it must accept,
agreement with a brute-force linearizability search on random histories, and one
short real run."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from jepsen.checkers import listappend
from jepsen.history import INF, Op, make_op, renumber
from jepsen.nemesis import Fault
from jepsen.runner import RunConfig, run


def app(e: str, c: float, r: float | None, lst: list[str] | None, t: str = "ok") -> Op:
    """An append of ``e``; ``lst`` is the list it wrote (ok) or tried to write (info)."""
    return make_op("append", e, c, r, t, result={} if lst is None else {"list": lst})


def rd(lst: list[str], c: float, r: float, final: bool = False) -> Op:
    return make_op("read", lst, c, r, "ok", result={"final": True} if final else {})


def verdict(ops: list[Op]) -> str:
    return listappend.check(renumber(ops)).verdict


BASE = [app("a", 0, 1, ["a"]), app("b", 2, 3, ["a", "b"])]


def test_valid_history_passes() -> None:
    ops = [*BASE, rd(["a"], 0.5, 2.5), rd(["a", "b"], 4, 5, final=True)]
    res = listappend.check(renumber(ops))
    assert res.verdict == "valid", res.details
    assert "2 acked appends" in res.summary


def test_info_append_may_be_present_or_absent() -> None:
    info = app("c", 3.5, None, ["a", "b", "c"], "info")
    assert verdict([*BASE, info, rd(["a", "b", "c"], 4, 5, final=True)]) == "valid"
    assert verdict([*BASE, info, rd(["a", "b"], 4, 5, final=True)]) == "valid"


def test_without_final_read_is_unknown() -> None:
    assert verdict(list(BASE)) == "unknown"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("lost", [rd(["a"], 4, 5, final=True)]),
        ("duplicate", [rd(["a", "b", "b"], 4, 5, final=True)]),
        ("divergent", [rd(["b", "a"], 4, 5, final=True)]),
        ("stale read", [rd(["a"], 4, 5), rd(["a", "b"], 6, 7, final=True)]),
        (
            "failed append visible",
            [app("c", 3.5, 3.6, None, "fail"), rd(["a", "b", "c"], 4, 5, final=True)],
        ),
        (
            "element before invoke",
            [rd(["a", "b", "c"], 4, 5), app("c", 6, 7, ["a", "b", "c"]),
             rd(["a", "b", "c"], 8, 9, final=True)],
        ),
        ("unexpected", [rd(["a", "b", "z"], 4, 5, final=True)]),
        (
            "info append wrote another list",
            [app("c", 3.5, None, ["a", "c"], "info"), rd(["a", "b", "c"], 4, 5, final=True)],
        ),
    ],
)  # fmt: skip
def test_anomalies_are_rejected(kind: str, extra: list[Op]) -> None:
    res = listappend.check(renumber([*BASE, *extra]))
    assert res.verdict == "invalid"
    assert kind in res.details["witness"], res.summary


def test_divergent_witness_names_both_lists() -> None:
    ops = [app("a", 0, 1, ["a"]), app("b", 0, 1, ["b"]), rd(["a"], 2, 3, final=True)]
    res = listappend.check(renumber(ops))
    w = res.details["witness"]["divergent"][0]
    assert {tuple(w["a_list"]), tuple(w["b_list"])} == {("a",), ("b",)}


def test_revision_order_is_checked_when_recorded() -> None:
    a = make_op("append", "a", 0, 1, "ok", result={"list": ["a"], "revision": 5})
    b = make_op("append", "b", 2, 3, "ok", result={"list": ["a", "b"], "revision": 4})
    r = make_op("read", ["a", "b"], 4, 5, "ok", result={"final": True, "mod_revision": 4})
    res = listappend.check(renumber([a, b, r]))
    assert "revision order" in res.details["witness"]


def test_keys_are_checked_independently() -> None:
    a = make_op("append", "a", 0, 1, "ok", key="k1", result={"list": ["a"]})
    b = make_op("append", "b", 0, 1, "ok", key="k2", result={"list": ["b"]})
    r1 = make_op("read", ["a"], 2, 3, "ok", key="k1", result={"final": True})
    r2 = make_op("read", ["b"], 2, 3, "ok", key="k2", result={"final": True})
    assert verdict([a, b, r1, r2]) == "valid"


# --- differential test against a brute-force search --------------------------------


def brute_linearizable(ops: list[Op]) -> bool:
    """Try every real-time-respecting order of a single-key list history: an append
    with a recorded list is a CAS from ``list[:-1]`` to ``list``, one without appends
    to whatever is there; ``info`` appends may be left out, ``fail`` ones must be."""
    ops = [o for o in ops if o.type != "fail"]
    n = len(ops)
    required = {i for i, o in enumerate(ops) if o.type == "ok"}
    preds = [{j for j in range(n) if ops[j].ret < ops[i].call} for i in range(n)]

    def step(state: tuple[Any, ...], o: Op) -> tuple[Any, ...] | None:
        if o.f == "read":
            return state if list(state) == list(o.value) else None
        lst = o.result.get("list")
        if lst is None:
            return (*state, o.value)
        ok = bool(lst) and list(state) == list(lst[:-1]) and lst[-1] == o.value
        return tuple(lst) if ok else None

    def go(done: frozenset[int], state: tuple[Any, ...]) -> bool:
        if required <= done:
            return True
        for i in range(n):
            if i not in done and preds[i] <= done:
                s2 = step(state, ops[i])
                if s2 is not None and go(done | {i}, s2):
                    return True
        return False

    return go(frozenset(), ())


def random_history(rng: random.Random) -> list[Op]:
    """A simulated list with linearization points inside op intervals (some appends
    failed or unknown), then often one corruption of an observation."""
    procs, n_ops = rng.randint(1, 3), rng.randint(1, 6)
    free = [0.0] * procs
    planned: list[tuple[float, Op, bool]] = []
    for i in range(n_ops):
        p = rng.randrange(procs)
        call = free[p] + rng.random() * 2
        dur = rng.random() * 3
        if rng.random() < 0.4:
            op = make_op("read", None, call, call + dur, "ok", process=p)
            applied = True
        else:
            t = rng.choices(["ok", "fail", "info"], [6, 1, 2])[0]
            op = make_op("append", f"e{i}", call, None if t == "info" else call + dur, t, process=p)
            applied = t == "ok" or (t == "info" and rng.random() < 0.5)
        planned.append((call + rng.random() * dur, op, applied))
        free[p] = call + dur + 0.01
    state: list[str] = []
    for _, op, applied in sorted(planned, key=lambda x: x[0]):
        if op.f == "read":
            op.value = list(state)
        elif op.type != "fail":
            attempt = [*state, op.value]
            if applied:
                state = attempt
            if op.type == "ok" or rng.random() < 0.7:
                op.result = {"list": attempt}
    ops = [o for _, o, _ in planned]
    if rng.random() < 0.6:
        _corrupt(rng, ops)
    return renumber(ops)


def _corrupt(rng: random.Random, ops: list[Op]) -> None:
    seen = [o for o in ops if listappend.observed(o) is not None]
    if not seen:
        return
    o = rng.choice(seen)
    lst = list(listappend.observed(o) or [])
    elems = [x.value for x in ops if x.f == "append"]
    how = rng.randrange(4)
    if how == 0 and lst:
        lst.pop(rng.randrange(len(lst)))
    elif how == 1 and elems:
        lst.insert(rng.randrange(len(lst) + 1), rng.choice(elems))
    elif how == 2 and len(lst) > 1:
        i = rng.randrange(len(lst) - 1)
        lst[i], lst[i + 1] = lst[i + 1], lst[i]
    elif how == 3 and lst:
        lst = lst[:-1]
    if o.f == "read":
        o.value = lst
    else:
        o.result = {"list": lst}


def test_checker_agrees_with_brute_force() -> None:
    rng = random.Random(11)
    tally = {True: 0, False: 0}
    for i in range(3000):
        h = random_history(rng)
        expected = brute_linearizable(h)
        got = not listappend.anomalies(h)
        assert got == expected, (i, [o.brief() for o in h], dict(listappend.anomalies(h)))
        tally[expected] += 1
    assert tally[True] > 500 and tally[False] > 500, tally


def test_info_ops_never_precede_anything() -> None:
    assert app("x", 0, None, ["x"], "info").ret == INF


# --- one short real run ------------------------------------------------------------


@pytest.mark.slow
def test_list_append_under_partition_is_valid(tmp_path: Path) -> None:
    plan = [Fault(2.0, 5.0, "partition", "isolate-leader", 1)]
    code, summary = run(
        RunConfig(
            workload="list-append",
            nemesis="partition",
            time=10,
            seed=1,
            store=tmp_path,
            faults=plan,
        )
    )
    assert code == 0, summary.get("checkers")
    assert summary["windows"], "the nemesis never fired"
    la = next(c for c in summary["checkers"] if c["name"] == "list-append")
    assert "acked appends all present" in la["summary"]
    assert summary["counts"]["ok"] > 100


@pytest.mark.slow
def test_list_append_catches_follower_local_reads(tmp_path: Path) -> None:
    # A planted raftkv bug (followers answer reads from local state) under an
    # isolated node: the checker must see a stale read in a real history.
    plan = [Fault(2.0, 6.0, "partition", "isolate-one", 1)]
    code, summary = run(
        RunConfig(
            workload="list-append",
            nemesis="partition",
            time=10,
            seed=1,
            store=tmp_path,
            faults=plan,
            mutations="follower-local-reads",
        )
    )
    assert code == 1, summary.get("checkers")
    la = next(c for c in summary["checkers"] if c["name"] == "list-append")
    assert "stale read" in la["summary"]
