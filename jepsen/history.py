"""Operation histories: the record the checkers judge, kept as JSON lines.

Every client call is two events, an ``invoke`` and a completion (``ok``, ``fail`` or
``info``), stamped with one monotonic clock so real-time order between ops is exact on
one host. ``fail`` means the op definitely did not take effect; ``info`` means we
cannot know (timeout, 503 on a write, reset after send), so checkers must allow both.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

INF = float("inf")


@dataclass
class Event:
    """One line of history.jsonl."""

    index: int
    process: int
    type: str  # invoke | ok | fail | info
    f: str
    key: str | None
    value: Any
    time: float  # seconds since the run's start, monotonic clock
    node: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Op:
    """An invoke paired with its completion; ``ret`` is INF for ops that never returned."""

    id: int
    process: int
    f: str
    key: str | None
    value: Any
    call: float
    ret: float
    type: str  # ok | fail | info
    node: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def brief(self) -> dict[str, Any]:
        """A compact dict for witnesses and reports."""
        return {
            "id": self.id,
            "process": self.process,
            "f": self.f,
            "key": self.key,
            "value": self.value,
            "type": self.type,
            "call": round(self.call, 4),
            "ret": None if self.ret == INF else round(self.ret, 4),
            "node": self.node,
            "result": self.result,
            "error": self.error,
        }


class Recorder:
    """Appends events to memory and to history.jsonl as they happen.

    Writing as we go means a harness crash still leaves the history on disk.
    """

    def __init__(self, path: Path | None, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.events: list[Event] = []
        self._fh: TextIO | None = open(path, "w") if path else None  # noqa: SIM115

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _add(self, ev: Event) -> Event:
        self.events.append(ev)
        if self._fh is not None:
            self._fh.write(json.dumps(asdict(ev)) + "\n")
        return ev

    def invoke(self, process: int, f: str, key: str | None, value: Any, node: str | None) -> Event:
        return self._add(
            Event(len(self.events), process, "invoke", f, key, value, self.now(), node)
        )

    def complete(
        self,
        inv: Event,
        type_: str,
        value: Any = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Event:
        assert type_ in ("ok", "fail", "info"), type_
        v = inv.value if value is None else value
        return self._add(
            Event(
                len(self.events),
                inv.process,
                type_,
                inv.f,
                inv.key,
                v,
                self.now(),
                inv.node,
                result,
                error,
            )
        )

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_events(path: Path) -> list[Event]:
    with open(path) as fh:
        return [Event(**json.loads(line)) for line in fh if line.strip()]


def pair(events: list[Event]) -> list[Op]:
    """Pair invokes with completions per process; an unpaired invoke becomes ``info``."""
    open_: dict[int, Event] = {}
    ops: list[Op] = []
    for ev in events:
        if ev.type == "invoke":
            if ev.process in open_:
                raise ValueError(f"process {ev.process} invoked twice without completing")
            open_[ev.process] = ev
            continue
        inv = open_.pop(ev.process, None)
        if inv is None:
            raise ValueError(f"completion without invoke: {ev}")
        ret = INF if ev.type == "info" else ev.time
        ops.append(
            Op(
                len(ops),
                ev.process,
                ev.f,
                ev.key,
                ev.value,
                inv.time,
                ret,
                ev.type,
                ev.node,
                ev.result or {},
                ev.error,
            )
        )
    for inv in open_.values():
        ops.append(
            Op(len(ops), inv.process, inv.f, inv.key, inv.value, inv.time, INF, "info", inv.node)
        )
    ops.sort(key=lambda o: o.call)
    for i, o in enumerate(ops):
        o.id = i
    return ops


def make_op(
    f: str,
    value: Any,
    call: float,
    ret: float | None,
    type_: str = "ok",
    key: str = "k",
    process: int = 0,
    result: dict[str, Any] | None = None,
) -> Op:
    """Build an op directly; used by self-tests and fixtures."""
    r = INF if ret is None else ret
    return Op(0, process, f, key, value, call, r, type_, None, result or {})


def renumber(ops: list[Op]) -> list[Op]:
    ops.sort(key=lambda o: o.call)
    for i, o in enumerate(ops):
        o.id = i
    return ops
