"""C8 lock checker fixtures: a lost update, duplicates, foreign tokens and reordering
must be rejected; a serial history and unknown-outcome appends must pass."""

from __future__ import annotations

from jepsen.checkers import lockcheck
from jepsen.history import Op, make_op, renumber

K = "locks/counter"


def append(tok: str, call: float, ret: float | None, type_: str = "ok") -> Op:
    return make_op("append", tok, call, ret, type_, K, process=hash(tok) % 1000)


def final(value: list[str], at: float = 100.0) -> Op:
    return make_op("read", value, at, at + 0.1, "ok", K, 99_999, {"final": True})


def test_serial_sections_pass() -> None:
    ops = renumber(
        [append("a", 0, 1), append("b", 2, 3), append("c", 4, 5), final(["a", "b", "c"])]
    )
    assert lockcheck.check(ops, K).verdict == "valid"


def test_lost_update_rejected() -> None:
    # A stalled holder read [a] before b's section and wrote [a, c] after it.
    ops = renumber([append("a", 0, 1), append("c", 2, 9), append("b", 5, 6), final(["a", "c"])])
    r = lockcheck.check(ops, K)
    assert r.verdict == "invalid" and "lost update" in r.summary
    assert r.details["witness"]["lost update"][0]["append"]["value"] == "b"


def test_duplicate_and_unexpected_and_failed_rejected() -> None:
    ops = renumber([append("a", 0, 1), append("f", 2, 3, "fail"), final(["a", "a", "x", "f"])])
    r = lockcheck.check(ops, K)
    assert r.verdict == "invalid"
    for kind in ("duplicate", "unexpected", "failed append visible"):
        assert kind in r.summary


def test_real_time_order_violation_rejected() -> None:
    ops = renumber([append("a", 0, 1), append("b", 2, 3), final(["b", "a"])])
    r = lockcheck.check(ops, K)
    assert r.verdict == "invalid" and "order" in r.summary


def test_unknown_appends_may_or_may_not_apply() -> None:
    ops = renumber(
        [append("a", 0, 1), append("u", 1.5, None, "info"), append("v", 1.6, None, "info")]
        + [append("b", 2, 3), final(["a", "u", "b"])]
    )
    assert lockcheck.check(ops, K).verdict == "valid"


def test_no_final_read_is_unknown() -> None:
    assert lockcheck.check(renumber([append("a", 0, 1)]), K).verdict == "unknown"


def test_merge_of_several_locks_keeps_the_worst_verdict_and_its_witness() -> None:
    good = lockcheck.check(renumber([append("a", 0, 1), final(["a"])]), K)
    lost = renumber([append("a", 0, 1), append("c", 2, 9), append("b", 5, 6), final(["a", "c"])])
    bad = lockcheck.check(lost, K)
    merged = lockcheck.merge([good, bad])
    assert merged.verdict == "invalid" and merged.name == "lock"
    assert "lock 1: lost update" in merged.summary.replace("lost update 1", "lost update")
    assert merged.details["witness"]["lock 1: lost update"][0]["append"]["value"] == "b"
    assert lockcheck.merge([good, good]).verdict == "valid"
    assert lockcheck.merge([good]) is good
