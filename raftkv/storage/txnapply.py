"""Applying a Txn: etcd's applier, inside the Writer's nested transaction.

Compares (including those of nested txns) are evaluated against the state before the
txn, then the ops of the chosen branches are checked (lease exists, key exists for
ignore_*, read revisions valid) and the quota reserved, and only then does anything
run. The txn's reads and range compares share one budget, stamped into the command by
its proposer, so every member stops at the same point with the same ResultTooLarge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkv.errors import NoSpace
from raftkv.storage.commands import DeleteRange, Put, Range, Txn
from raftkv.storage.results import DeleteRangeResponse, PutResponse, Response, TxnResponse
from raftkv.storage.validate import has_put, validate
from raftkv.storage.view import Budget

if TYPE_CHECKING:
    from raftkv.storage.writer import Writer


class TxnApply:
    """Mixed into Writer (writer.py)."""

    def _txn(self: Writer, cmd: Txn, index: int) -> TxnResponse:
        validate(cmd, self.max_key_size)
        if self._nospace_alarm() and has_put(cmd):
            raise NoSpace()
        budget = Budget(cmd.max_range_keys, cmd.max_range_bytes)
        path: list[bool] = []
        self._compare_path(cmd, path, budget)
        cost, _ = self._check_branch(cmd, path, 0)
        if cost:
            self.reserve(cost)
        resp, _ = self._run_branch(cmd, path, 0, budget)
        resp.revision = self.current
        return resp

    def _compare_path(self: Writer, t: Txn, path: list[bool], budget: Budget) -> None:
        """etcd's compareToPath: outcome of each txn on the chosen branches, pre-order."""
        ok = all(self.compare(c, budget) for c in t.compares)
        path.append(ok)
        for op in t.success if ok else t.failure:
            if isinstance(op, Txn):
                self._compare_path(op, path, budget)

    def _check_branch(self: Writer, t: Txn, path: list[bool], pos: int) -> tuple[int, int]:
        """Check the ops that will run; return (space they need, next path position)."""
        ok = path[pos]
        pos += 1
        cost = 0
        for op in t.success if ok else t.failure:
            if isinstance(op, Put):
                prev = self.latest(op.key)
                value, lease = self._check_put(op, prev)
                cost += self.put_cost(op.key, value, lease, prev)
            elif isinstance(op, Range):
                self.check_revision(op.revision)
            elif isinstance(op, Txn):
                sub_cost, pos = self._check_branch(op, path, pos)
                cost += sub_cost
        return cost, pos

    def _run_branch(
        self: Writer, t: Txn, path: list[bool], pos: int, budget: Budget
    ) -> tuple[TxnResponse, int]:
        ok = path[pos]
        pos += 1
        responses: list[Response] = []
        for op in t.success if ok else t.failure:
            if isinstance(op, Range):
                responses.append(self.range(op, budget))
            elif isinstance(op, Put):
                prev = self.latest(op.key)
                value, lease = self._check_put(op, prev)
                self.write_put(op.key, value, lease, prev)
                responses.append(PutResponse(self.current, prev if op.prev_kv else None))
            elif isinstance(op, DeleteRange):
                prevs = self._delete(op)
                kept = prevs if op.prev_kv else []
                responses.append(DeleteRangeResponse(self.current, len(prevs), kept))
            else:
                nested, pos = self._run_branch(op, path, pos, budget)
                responses.append(nested)  # revision stays 0: etcd leaves nested headers empty
        return TxnResponse(0, ok, responses), pos
