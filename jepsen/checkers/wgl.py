"""Wing–Gong linearizability search with Lowe's memoization (as in Porcupine).

Events are the calls and returns of every op, sorted by time with calls before
returns at equal times (closed intervals: touching ops are concurrent). The search
linearizes a pending call whenever the model allows it, and backtracks when it meets
a return whose call is not yet linearized. Lowe's cache of (linearized bitset, state)
prunes revisits, which is what makes unique-value register histories cheap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jepsen.checkers.models import Model
from jepsen.history import Op


@dataclass
class _Entry:
    op: Op | None
    is_call: bool
    idx: int
    match: _Entry | None = None
    prev: _Entry | None = None
    next: _Entry | None = None


@dataclass
class WglResult:
    verdict: str  # valid | invalid | unknown
    linearization: list[Op] = field(default_factory=list)
    longest: list[Op] = field(default_factory=list)  # longest legal prefix seen
    stuck: list[Op] = field(default_factory=list)  # ops pending where the search died
    final_state: Any = None
    steps: int = 0


def _lift(e: _Entry) -> None:
    assert e.prev is not None and e.match is not None
    e.prev.next = e.next
    if e.next is not None:
        e.next.prev = e.prev
    m = e.match
    assert m.prev is not None
    m.prev.next = m.next
    if m.next is not None:
        m.next.prev = m.prev


def _unlift(e: _Entry) -> None:
    m = e.match
    assert m is not None and m.prev is not None and e.prev is not None
    m.prev.next = m
    if m.next is not None:
        m.next.prev = m
    e.prev.next = e
    if e.next is not None:
        e.next.prev = e


def check(model: Model, ops: list[Op], deadline: float | None = None) -> WglResult:
    """Search for a linearization of ``ops`` (already filtered by models.prepare)."""
    if not ops:
        return WglResult("valid")
    raw: list[tuple[float, int, _Entry]] = []
    for i, op in enumerate(ops):
        c = _Entry(op, True, i)
        r = _Entry(op, False, i)
        c.match = r
        raw.append((op.call, 0, c))
        raw.append((op.ret, 1, r))
    raw.sort(key=lambda t: (t[0], t[1]))
    head = _Entry(None, False, -1)
    prev = head
    for _, _, e in raw:
        prev.next = e
        e.prev = prev
        prev = e

    state = model.init()
    linearized = 0
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[_Entry, Any]] = []
    longest: list[Op] = []
    stuck: list[Op] = []
    stuck_depth = -1
    steps = 0
    e = head.next
    while head.next is not None:
        steps += 1
        if deadline is not None and steps % 2048 == 0 and time.monotonic() > deadline:
            return WglResult("unknown", longest=longest, steps=steps)
        assert e is not None
        if e.is_call:
            assert e.op is not None
            legal, s2 = model.step(state, e.op)
            if legal:
                bits2 = linearized | (1 << e.idx)
                if (bits2, s2) not in cache:
                    cache.add((bits2, s2))
                    stack.append((e, state))
                    state, linearized = s2, bits2
                    _lift(e)
                    if len(stack) > len(longest):
                        longest = [x.op for x, _ in stack if x.op is not None]
                    e = head.next
                    continue
            e = e.next
        else:
            if len(stack) > stuck_depth:
                # The deepest dead end: this return's op could not be placed after the
                # current prefix; it and the calls pending with it form the witness.
                stuck_depth = len(stack)
                stuck = [x for x in _pending(head) if x is not e.op] + [e.op]  # type: ignore[list-item]
            if not stack:
                return WglResult("invalid", longest=longest, stuck=stuck, steps=steps)
            e, state = stack.pop()
            linearized &= ~(1 << e.idx)
            _unlift(e)
            e = e.next
    lin = [x.op for x, _ in stack if x.op is not None]
    return WglResult("valid", linearization=lin, final_state=state, steps=steps)


def _pending(head: _Entry) -> list[Op]:
    """Ops whose calls come before the first return still in the list: the culprits."""
    out: list[Op] = []
    e = head.next
    while e is not None:
        if e.op is not None:
            out.append(e.op)
        if not e.is_call:
            break
        e = e.next
    return out
