"""Brute-force linearizability: try every real-time-respecting order.

Exponential, only for tiny histories; its value is being obviously right, so the
WGL search can be tested against it. Unknown-outcome ops may be placed anywhere after
their call or left out entirely; every completed op must be placed.
"""

from __future__ import annotations

from typing import Any

from jepsen.checkers.models import Model
from jepsen.history import Op


def linearizable(model: Model, ops: list[Op]) -> bool:
    n = len(ops)
    required = {i for i, o in enumerate(ops) if o.type != "info"}
    preds = [{j for j in range(n) if ops[j].ret < ops[i].call} for i in range(n)]

    def go(done: frozenset[int], state: Any) -> bool:
        if required <= done:
            return True
        for i in range(n):
            if i in done or not preds[i] <= done:
                continue
            ok, s2 = model.step(state, ops[i])
            if ok and go(done | {i}, s2):
                return True
        return False

    return go(frozenset(), model.init())
