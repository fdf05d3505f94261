"""Range, Put, DeleteRange, Txn and Compact: the key-value operations, once.

Writes are bounded (request size, txn ops, the NOSPACE alarm) before they are
proposed. Reads — standalone ranges and txns that only read, as etcd serves them —
wait for a ReadIndex round (unless serializable) and are served from the local state
within the read budget; a read that may be big runs on a worker thread so the event
loop keeps serving Raft and other clients meanwhile.
"""

from __future__ import annotations

import asyncio

from raftkv.errors import Compacted, CompareFailed, FutureRevision, NoSpace
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.storage import commands as cmds
from raftkv.storage.results import (
    CompactResponse,
    DeleteRangeResponse,
    PutResponse,
    RangeResponse,
    TxnResponse,
)
from raftkv.storage.view import Budget, is_read_only

# A range with a range_end and no small limit may return a lot: run it off the loop.
INLINE_LIMIT = 1000


def _maybe_big(r: cmds.Range) -> bool:
    return bool(r.range_end) and (r.limit == 0 or r.limit > INLINE_LIMIT) and not r.count_only


class KvService(ServiceBase):
    def _read_budget(self) -> Budget:
        return Budget(self.limits.max_range_keys, self.limits.max_range_bytes)

    def _txn_budget(self) -> Budget:
        return Budget(self.limits.max_txn_range_keys, self.limits.max_txn_range_bytes)

    def _nospace(self) -> bool:
        return self.node.mvcc.nospace

    async def range(
        self, r: cmds.Range, serializable: bool = False, ctx: CallContext = ANONYMOUS
    ) -> Result[RangeResponse]:
        await self.linearize(serializable)
        mvcc = self.node.mvcc
        if _maybe_big(r):
            resp = await asyncio.to_thread(mvcc.range, r, self._read_budget())
        else:
            resp = mvcc.range(r, self._read_budget())
        return self.result(resp, resp.revision)

    async def put(
        self, p: cmds.Put, client_id: bytes | None = None, ctx: CallContext = ANONYMOUS
    ) -> Result[PutResponse]:
        if self._nospace():
            raise NoSpace()
        res = await self.propose(p, client_id)
        assert isinstance(res.response, PutResponse)
        return self.result(res.response, res.revision)

    async def delete_range(
        self, d: cmds.DeleteRange, client_id: bytes | None = None, ctx: CallContext = ANONYMOUS
    ) -> Result[DeleteRangeResponse]:
        res = await self.propose(d, client_id)
        assert isinstance(res.response, DeleteRangeResponse)
        return self.result(res.response, res.revision)

    async def txn(
        self,
        t: cmds.Txn,
        serializable: bool = False,
        client_id: bytes | None = None,
        ctx: CallContext = ANONYMOUS,
    ) -> Result[TxnResponse]:
        self.limits.check_txn(t)
        cmds.validate(t, self.node.mvcc.env.max_key_size())
        if is_read_only(t) and client_id is None:
            await self.linearize(serializable)
            resp = await asyncio.to_thread(self.node.mvcc.read_txn, t, self._txn_budget())
            return self.result(resp, resp.revision)
        if self._nospace() and cmds.has_put(t):
            raise NoSpace()
        res = await self.propose(self.limits.stamp(t), client_id)
        assert isinstance(res.response, TxnResponse)
        return self.result(res.response, res.revision)

    async def guarded_write(
        self,
        key: bytes,
        op: cmds.Put | cmds.DeleteRange,
        compares: tuple[cmds.Compare, ...],
        client_id: bytes | None = None,
        ctx: CallContext = ANONYMOUS,
    ) -> Result[PutResponse | DeleteRangeResponse]:
        """`op` only if every compare holds (the native API's ?if_* conditions);
        CompareFailed with the key as it is now otherwise. One Raft entry."""
        if not compares:
            if isinstance(op, cmds.Put):
                return await self.put(op, client_id, ctx)  # type: ignore[return-value]
            return await self.delete_range(op, client_id, ctx)  # type: ignore[return-value]
        if isinstance(op, cmds.Put) and self._nospace():
            raise NoSpace()
        txn = cmds.Txn(compares, (op,), (cmds.Range(key),))
        res = await self.propose(self.limits.stamp(txn), client_id)
        tr = res.response
        assert isinstance(tr, TxnResponse)
        if not tr.succeeded:
            rr = tr.responses[0]
            assert isinstance(rr, RangeResponse)
            raise CompareFailed(rr.kvs[0] if rr.kvs else None, res.revision)
        out = tr.responses[0]
        assert isinstance(out, PutResponse | DeleteRangeResponse)
        return self.result(out, res.revision)

    async def compact(
        self, revision: int, physical: bool = False, ctx: CallContext = ANONYMOUS
    ) -> Result[CompactResponse]:
        mvcc = self.node.mvcc
        if revision > mvcc.current_revision():
            raise FutureRevision(mvcc.current_revision())
        if revision <= mvcc.compact_revision():
            raise Compacted(mvcc.compact_revision())
        res = await self.propose(cmds.Compact(revision))
        assert isinstance(res.response, CompactResponse)
        if physical:
            await self.node.wait_applied(res.index)
        return self.result(res.response, res.revision)
