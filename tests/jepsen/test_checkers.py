"""Checker self-tests: WGL against brute force, and anomaly fixtures each checker must
reject. No cluster; all fast."""

from __future__ import annotations

import random

from jepsen.checkers import brute, convergence, linearizable, revision, setcheck, wgl
from jepsen.checkers.models import Register, prepare
from jepsen.history import Op, make_op, renumber


def random_history(rng: random.Random, n_ops: int, procs: int, domain: int) -> list[Op]:
    """A history from a simulated register with linearization points inside intervals,
    some ops with unknown outcome; then, half the time, one output corrupted."""
    ops: list[Op] = []
    free_at = [0.0] * procs
    events: list[tuple[float, Op, bool]] = []
    for _ in range(n_ops):
        p = rng.randrange(procs)
        call = free_at[p] + rng.random() * 2
        dur = rng.random() * 3
        lp = call + rng.random() * dur
        f = rng.choice(["read", "write", "cas"])
        value = rng.randrange(domain) if f == "write" else None
        if f == "cas":
            value = [rng.choice([None, *range(domain)]), rng.randrange(domain)]
        info = f != "read" and rng.random() < 0.15
        op = make_op(f, value, call, None if info else call + dur, "info" if info else "ok", "k", p)
        applied = not info or rng.random() < 0.5
        events.append((lp, op, applied))
        ops.append(op)
        free_at[p] = call + dur + 0.01
        if info:  # the process is retired; keep times moving
            free_at[p] = call + dur + 0.01
    state = None
    for _, op, applied in sorted(events, key=lambda t: t[0]):
        if op.f == "read":
            op.value = state
        elif op.f == "write" and applied:
            state = op.value
        elif op.f == "cas":
            ok = state == op.value[0]
            if op.type == "ok" and not ok:
                op.type = "fail"  # a failed compare is a definite no-op
            elif ok and applied:
                state = op.value[1]
    if rng.random() < 0.5:
        reads = [o for o in ops if o.f == "read"]
        if reads:
            rng.choice(reads).value = rng.choice([None, *range(domain)])
    return renumber(ops)


def test_wgl_agrees_with_brute_force_on_thousands_of_histories() -> None:
    rng = random.Random(7)
    model = Register()
    verdicts = {True: 0, False: 0}
    for i in range(3000):
        h = prepare(random_history(rng, rng.randint(1, 7), rng.randint(1, 4), rng.randint(2, 3)))
        expected = brute.linearizable(model, h)
        got = wgl.check(model, h).verdict
        assert got == ("valid" if expected else "invalid"), (i, [o.brief() for o in h])
        verdicts[expected] += 1
    # Both outcomes must be well represented, or the comparison proves little.
    assert verdicts[True] > 500 and verdicts[False] > 500, verdicts


def w(v: object, c: float, r: float | None, rev: int | None = None, t: str = "ok") -> Op:
    return make_op("write", v, c, r, t, result={"revision": rev} if rev else {})


def rd(v: object, c: float, r: float, mod: int, hdr: int, key: str = "k") -> Op:
    return make_op("read", v, c, r, "ok", key, result={"mod_revision": mod, "revision": hdr})


def test_stale_read_rejected_by_linearizable_and_revision() -> None:
    h = renumber([w("a", 0, 1, 5), w("b", 2, 3, 6), rd("a", 4, 5, 5, 6)])
    assert linearizable.check(h).verdict == "invalid"
    res = revision.check(h)
    assert res.verdict == "invalid" and "back" in res.summary


def test_lost_write_rejected() -> None:
    # b acknowledged, yet later reads see the older a (at a later header revision).
    h = renumber([w("a", 0, 1, 5), w("b", 2, 3, 6), rd("a", 4, 5, 5, 9), rd("a", 6, 7, 5, 9)])
    lin = linearizable.check(h)
    assert lin.verdict == "invalid"
    assert lin.details["witness"]["cannot_linearize"]
    assert revision.check(h).verdict == "invalid"


def test_duplicate_write_rejected() -> None:
    # a applied twice: seen again at revision 7 after b overwrote it at 6.
    h = renumber([w("a", 0, 1, 5), w("b", 2, 3, 6), rd("a", 4, 5, 7, 7)])
    assert linearizable.check(h).verdict == "invalid"
    res = revision.check(h)
    assert res.verdict == "invalid"
    assert res.details["witness"]["rule"] == "value seen at two revisions"


def test_revision_regression_rejected_even_when_values_linearize() -> None:
    # Two keys, values fine per key, but the header revision goes backwards in time.
    h = renumber(
        [
            make_op("write", "x", 0, 1, key="a", result={"revision": 10}),
            make_op("read", None, 2, 3, key="b", result={"mod_revision": 0, "revision": 4}),
        ]
    )
    assert linearizable.check(h).verdict == "valid"
    res = revision.check(h)
    assert res.verdict == "invalid"
    assert res.details["witness"]["rule"] == "header revision went back"


def test_duplicate_revision_rejected() -> None:
    h = renumber([w("a", 0, 1, 5), w("b", 2, 3, 5)])
    assert revision.check(h).verdict == "invalid"


def test_info_write_may_apply_late_or_never() -> None:
    late = renumber([w("a", 0, None, t="info"), rd(None, 1, 2, 0, 1), rd("a", 3, 4, 5, 5)])
    never = renumber([w("a", 0, None, t="info"), rd(None, 1, 2, 0, 1), rd(None, 3, 4, 0, 5)])
    assert linearizable.check(late).verdict == "valid"
    assert linearizable.check(never).verdict == "valid"
    flip = renumber([w("a", 0, None, t="info"), rd("a", 1, 2, 5, 5), rd(None, 3, 4, 0, 5)])
    assert linearizable.check(flip).verdict == "invalid"


def test_valid_history_passes_every_register_checker() -> None:
    h = renumber([w("a", 0, 1, 5), rd("a", 0.5, 2, 5, 5), w("b", 3, 4, 6), rd("b", 5, 6, 6, 6)])
    assert linearizable.check(h).verdict == "valid"
    assert revision.check(h).verdict == "valid"


def test_wgl_deadline_gives_unknown_not_valid() -> None:
    # 14 concurrent unknown writes and an impossible read: the search must try every
    # subset before proving it invalid, so a zero deadline has to cut it off.
    h = [w(f"v{i}", 0, None, t="info") for i in range(14)] + [rd("nope", 1, 2, 1, 1)]
    h = renumber(h)
    assert linearizable.check(h, per_key_seconds=0.0).verdict == "unknown"
    assert linearizable.check(h, per_key_seconds=30.0).verdict == "invalid"


def add(e: str, c: float, r: float | None, t: str = "ok") -> Op:
    return make_op("add", e, c, r, t, key="s")


def sread(els: list[str], c: float, r: float, final: bool = False) -> Op:
    return make_op("read", els, c, r, "ok", "s", result={"final": final})


def test_set_checker_finds_lost_unexpected_duplicate() -> None:
    ok = [add("1", 0, 1), add("2", 0, 1), add("3", 0, None, "info")]
    assert setcheck.check(renumber([*ok, sread(["1", "2"], 2, 3, True)])).verdict == "valid"
    lost = setcheck.check(renumber([*ok, sread(["1"], 2, 3, True)]))
    assert lost.verdict == "invalid" and "lost" in lost.summary
    unexpected = setcheck.check(renumber([*ok, sread(["1", "2", "9"], 2, 3, True)]))
    assert unexpected.verdict == "invalid" and "unexpected" in unexpected.summary
    dup = setcheck.check(renumber([*ok, sread(["1", "2", "2"], 2, 3, True)]))
    assert dup.verdict == "invalid" and "duplicate" in dup.summary
    failed = setcheck.check(renumber([*ok, add("4", 0, 1, "fail"), sread(["1", "2", "4"], 2, 3)]))
    assert failed.verdict == "invalid"
    assert setcheck.check(renumber(ok)).verdict == "unknown"


def test_convergence_checker() -> None:
    st = {"applied": 10, "revision": 7}
    same = {"k": ["a", 5]}
    assert convergence.check({"n1": st, "n2": st}, {"n1": same, "n2": same}).verdict == "valid"
    bad = convergence.check({"n1": st, "n2": st}, {"n1": same, "n2": {"k": ["b", 6]}})
    assert bad.verdict == "invalid"
    lag = convergence.check({"n1": st, "n2": {**st, "applied": 9}}, {"n1": same, "n2": same})
    assert lag.verdict == "invalid"
    assert convergence.check({"n1": st, "n2": None}, {"n1": same}).verdict == "unknown"


def test_empty_history_is_unknown() -> None:
    assert linearizable.check([]).verdict == "unknown"
    assert revision.check([]).verdict == "unknown"
