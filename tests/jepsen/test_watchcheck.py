"""C5 watch checker fixtures: gaps, duplicates, split or partial revisions, reordering,
disagreement between watchers and phantom events must each be rejected."""

from __future__ import annotations

from typing import Any

import pytest

from jepsen.checkers import watchcheck
from jepsen.history import Op, make_op, renumber

P = "watch/"
R2 = [2, [["PUT", "watch/k0", "a", 2]]]
R3 = [3, [["PUT", "watch/k1", "b", 3], ["PUT", "watch/k2", "c", 3]]]
R4 = [4, [["DELETE", "watch/k0", "", 4]]]


def writes() -> list[Op]:
    return [
        make_op("write", "a", 0, 1, "ok", "watch/k0", 1, {"revision": 2}),
        make_op("txn", [["watch/k1", "b"], ["watch/k2", "c"]], 1, 2, "ok", P, 2, {"revision": 3}),
        make_op("delete", None, 2, 3, "ok", "watch/k0", 3, {"revision": 4, "deleted": 1}),
        make_op("write", "f", 3, 4, "fail", "watch/k3", 4),
    ]


def conn(w: int, start: int, msgs: list[Any], at: float, final: bool = False) -> Op:
    value = {"watcher": w, "start": start, "msgs": msgs}
    return make_op("watch", value, at, at + 0.5, "ok", P, 1000 + w, {"final": final})


def good() -> list[Op]:
    return [
        conn(0, 1, [R2], 0.5),
        conn(0, 3, [R3, R4], 5, final=True),
        conn(1, 3, [R3], 1.5),
        conn(1, 4, [R4], 6, final=True),
    ]


def test_resumed_watchers_that_agree_pass() -> None:
    r = watchcheck.check(renumber(writes() + good()), P)
    assert r.verdict == "valid", r.details


BAD: dict[str, list[Op]] = {
    "gap": [conn(0, 1, [R2], 0.5), conn(0, 4, [R4], 5, final=True)],
    "duplicate": [conn(0, 1, [R2], 0.5), conn(0, 2, [R2, R3, R4], 5, final=True)],
    "split revision": [
        conn(0, 2, [R2, [3, R3[1][:1]], [3, R3[1][1:]], R4], 5, final=True),  # type: ignore[index]
    ],
    "partial revision": [conn(0, 3, [[3, R3[1][:1]], R4], 5, final=True)],  # type: ignore[index]
    "out of order": [conn(0, 2, [R3, R2, R4], 5, final=True)],
    "disagreement": [
        conn(0, 3, [R3, R4], 5, final=True),
        conn(1, 3, [[3, [["PUT", "watch/k1", "b", 3]]], R4], 5, final=True),
    ],
    "phantom": [conn(0, 2, [R2, R3, R4, [5, [["PUT", "watch/k4", "zzz", 5]]]], 5, True)],
    "failed write visible": [conn(0, 4, [R4, [5, [["PUT", "watch/k3", "f", 5]]]], 5, True)],
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_anomaly_rejected(kind: str) -> None:
    r = watchcheck.check(renumber(writes() + BAD[kind]), P)
    assert r.verdict == "invalid" and kind in r.summary, (kind, r.summary)


def test_tail_gap_after_final_catch_up_rejected() -> None:
    # The final catch-up connection stopped short of the newest acked write (rev 4).
    r = watchcheck.check(renumber(writes() + [conn(0, 2, [R2, R3], 5, final=True)]), P)
    assert r.verdict == "invalid" and "gap" in r.summary
    # Without a final connection the window ends at the last delivered revision.
    assert watchcheck.check(renumber(writes() + [conn(0, 2, [R2, R3], 5)]), P).verdict == "valid"


def test_no_watchers_is_unknown() -> None:
    assert watchcheck.check(renumber(writes()), P).verdict == "unknown"
