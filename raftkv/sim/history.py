"""Client history of the simulated register, and its linearizability check.

Writes carry unique values, so the committed Raft log gives a witness order: the
position of each write in the log. The history is linearizable with respect to that
order when (Herlihy & Wing, specialised to a register with unique writes):

1. every acknowledged write is in the committed log, and every value read was
   written by a write in the committed log (no lost writes, no dirty reads);
2. real-time order between writes agrees with log order;
3. a read returns the latest write of some log prefix that includes every write
   acknowledged before the read was invoked (no stale reads), and its write was
   invoked before the read returned (no reads from the future);
4. reads that do not overlap observe non-decreasing prefixes (no time travel).

Placing each write at its log position and each read right after the write it
returned (reads ordered by invocation) is then a valid linearization, so these
checks are sufficient; for a correct Raft they are also necessary, because the
register's value sequence *is* the log order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Op:
    id: int
    client: int
    kind: str  # "w" or "r"
    value: int | None  # write: the value written; read: the value returned (None = initial)
    node: int
    invoke: int  # global event sequence number at invocation
    complete: int | None = None
    status: str = "pending"  # ok | fail (definitely not applied) | info (unknown)

    def describe(self) -> str:
        return (
            f"op#{self.id} client={self.client} node={self.node} {self.kind}"
            f"({self.value}) [{self.invoke}..{self.complete}] {self.status}"
        )


def check_register(ops: list[Op], log_positions: dict[int, int]) -> list[str]:
    """Return human-readable violations (empty = linearizable)."""
    violations: list[str] = []
    writes = {op.value: op for op in ops if op.kind == "w" and op.value is not None}
    ok_writes = [op for op in writes.values() if op.status == "ok"]
    ok_reads = [op for op in ops if op.kind == "r" and op.status == "ok"]

    def pos(value: int | None) -> int:
        return 0 if value is None else log_positions.get(value, -1)

    for w in ok_writes:
        if w.value not in log_positions:
            violations.append(f"lost write: {w.describe()} acknowledged but not committed")
    for r in ok_reads:
        if r.value is not None and r.value not in log_positions:
            violations.append(f"dirty read: {r.describe()} returned an uncommitted value")
        if r.value is not None and r.value in writes:
            w = writes[r.value]
            if r.complete is not None and w.invoke > r.complete:
                violations.append(f"read from the future: {r.describe()} vs {w.describe()}")
    if violations:
        return violations

    # 2. writes: real-time order must agree with log order.
    by_complete = sorted((w for w in ok_writes), key=lambda w: w.complete or 0)
    for w2 in writes.values():
        if w2.value not in log_positions:
            continue
        for w1 in by_complete:
            if (w1.complete or 0) >= w2.invoke:
                break
            if log_positions[w1.value] > log_positions[w2.value]:  # type: ignore[index]
                violations.append(
                    f"write order: {w1.describe()} finished before {w2.describe()} began "
                    f"but is later in the log"
                )
    # 3. stale reads: the newest write acknowledged before the read began.
    completes = sorted(((w.complete or 0), log_positions[w.value]) for w in ok_writes)  # type: ignore[index]
    for r in ok_reads:
        newest = 0
        newest_desc = ""
        for complete, p in completes:
            if complete >= r.invoke:
                break
            if p > newest:
                newest = p
                newest_desc = f"write at log position {p}"
        if pos(r.value) < newest:
            violations.append(
                f"stale read: {r.describe()} (log position {pos(r.value)}) but a "
                f"{newest_desc} was acknowledged before it began"
            )
    # 4. non-overlapping reads observe non-decreasing prefixes.
    reads = sorted(ok_reads, key=lambda r: r.complete or 0)
    for r2 in ok_reads:
        for r1 in reads:
            if (r1.complete or 0) >= r2.invoke:
                break
            if pos(r1.value) > pos(r2.value):
                violations.append(f"read went back in time: {r1.describe()} then {r2.describe()}")
                break
    return violations
