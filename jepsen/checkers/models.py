"""Sequential specifications for the linearizability checkers.

A model is pure: ``step(state, op) -> (legal, new_state)`` on hashable states, so the
WGL search can memoize (linearized-set, state) pairs. Ops whose outcome is unknown
(``info``) are always legal and apply their effect deterministically from the state.
"""

from __future__ import annotations

from typing import Any, Protocol

from jepsen.history import Op


class Model(Protocol):
    def init(self) -> Any: ...

    def step(self, state: Any, op: Op) -> tuple[bool, Any]: ...


class Register:
    """A single register: read / write / cas(expected, new); absent is ``None``."""

    def init(self) -> Any:
        return None

    def step(self, state: Any, op: Op) -> tuple[bool, Any]:
        unknown = op.type == "info"
        if op.f == "read":
            return (True, state) if unknown else (state == op.value, state)
        if op.f == "write":
            return True, op.value
        if op.f == "cas":
            expected, new = op.value
            if state == expected:
                return True, new
            return unknown, state
        raise ValueError(f"register model: unknown f {op.f!r}")


def prepare(ops: list[Op]) -> list[Op]:
    """Drop what carries no constraint: failed ops and reads with unknown outcomes."""
    return [o for o in ops if o.type != "fail" and not (o.type == "info" and o.f == "read")]
