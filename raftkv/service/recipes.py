"""etcd's server-side lock and election (v3lock, v3election), over the kv service.

A contender's key is `name + "/" + hex(lease)`, created only if absent and bound to
its lease; the holder (or leader) is the key under `name/` with the lowest create
revision. A waiter watches only the key created just before its own (no thundering
herd). If a waiting client goes away its key is deleted, as etcd's Mutex gives its
slot back when the request context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from raftkv.errors import (
    ElectionNoLeader,
    ElectionNotLeader,
    Invalid,
    InvalidArgument,
    LeaseNotFound,
)
from raftkv.node.watch import BEHIND
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.service.kv import KvService
from raftkv.service.lease import LeaseService
from raftkv.storage import commands as cmds
from raftkv.storage.results import EventType, KeyValue, RangeResponse, TxnResponse

SESSION_TTL = 60  # etcd's concurrency.NewSession default


@dataclass(frozen=True, slots=True)
class LeaderKey:
    name: bytes
    key: bytes
    rev: int
    lease: int


class RecipeService(ServiceBase):
    def __init__(self, node, limits, kv: KvService, leases: LeaseService) -> None:  # type: ignore[no-untyped-def]
        super().__init__(node, limits)
        self.kv = kv
        self.leases = leases

    async def _claim(
        self, name: bytes, lease: int, value: bytes
    ) -> tuple[bytes, int, int, int, KeyValue | None]:
        """Create our key if absent: (key, its lease, our create revision, header
        revision, the existing kv if it was already there)."""
        if lease == 0:
            # etcd's server-side session: no lease given, so it grants one of the
            # session's default TTL and does not keep it alive (the key expires with it).
            lease = (await self.leases.grant(SESSION_TTL)).response.id
        elif not await self.leases.exists(lease):
            raise LeaseNotFound(lease)
        key = name + b"/" + f"{lease:x}".encode()
        txn = cmds.Txn(
            (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, 0),),
            (cmds.Put(key, value, lease=lease),),
            (cmds.Range(key),),
        )
        res = await self.kv.txn(txn)
        tr = res.response
        if tr.succeeded:
            return key, lease, res.revision, res.revision, None
        rr = tr.responses[0]
        assert isinstance(rr, RangeResponse) and rr.kvs
        return key, lease, rr.kvs[0].create_revision, res.revision, rr.kvs[0]

    async def _wait_turn(self, prefix: bytes, my_rev: int) -> int | None:
        """Block until no key under `prefix` is older than ours; None if it never
        waited, else the revision at which the last wait ended."""
        end = cmds.prefix_end(prefix)
        mvcc = self.node.mvcc
        waited = False
        while True:
            sub = self.node.hub.subscribe(prefix, end)
            try:
                r = mvcc.range(
                    cmds.Range(
                        prefix,
                        end,
                        limit=1,
                        sort_order=cmds.SortOrder.DESCEND,
                        sort_target=cmds.SortTarget.CREATE,
                        max_create_revision=my_rev - 1,
                    )
                )
                if not r.kvs:
                    return r.revision if waited else None
                waited = True
                waiting_on = r.kvs[0].key
                while True:
                    batch = await sub.get()
                    if batch is None or batch is BEHIND:
                        break  # re-check from the store
                    assert isinstance(batch, list)
                    if any(e.type == EventType.DELETE and e.kv.key == waiting_on for e in batch):
                        break
            finally:
                self.node.hub.unsubscribe(sub)

    async def _give_back_on_cancel(self, key: bytes, prefix: bytes, rev: int) -> int | None:
        try:
            return await self._wait_turn(prefix, rev)
        except asyncio.CancelledError:
            self.node.spawn(self._delete_quietly(key))
            raise

    async def _delete_quietly(self, key: bytes) -> None:
        with contextlib.suppress(Exception):
            await self.kv.delete_range(cmds.DeleteRange(key))

    # --- v3lock ---------------------------------------------------------------------
    async def lock(self, name: bytes, lease: int, ctx: CallContext = ANONYMOUS) -> Result[bytes]:
        key, _, my_rev, header_rev, _ = await self._claim(name, lease, b"")
        waited_until = await self._give_back_on_cancel(key, name + b"/", my_rev)
        if waited_until is not None:  # etcd's Mutex keeps the header of its last wait
            header_rev = waited_until
        return self.result(key, header_rev)

    async def unlock(self, key: bytes, ctx: CallContext = ANONYMOUS) -> Result[None]:
        if not key:
            raise InvalidArgument(Invalid.KEY_NOT_PROVIDED)
        res = await self.kv.delete_range(cmds.DeleteRange(key))
        return self.result(None, res.revision)

    # --- v3election -------------------------------------------------------------------
    async def campaign(
        self, name: bytes, lease: int, value: bytes, ctx: CallContext = ANONYMOUS
    ) -> Result[LeaderKey]:
        key, lease, rev, header_rev, existing = await self._claim(name, lease, value)
        if existing is not None and existing.value != value:
            await self._proclaim(key, rev, value)
        await self._give_back_on_cancel(key, name + b"/", rev)
        return self.result(LeaderKey(name, key, rev, lease), header_rev)

    async def _proclaim(self, key: bytes, rev: int, value: bytes) -> int:
        txn = cmds.Txn(
            (cmds.Compare(key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, rev),),
            (cmds.Put(key, value, ignore_lease=True),),
            (),
        )
        res = await self.kv.txn(txn)
        if not res.response.succeeded:
            raise ElectionNotLeader()
        return res.revision

    async def proclaim(
        self, leader: LeaderKey, value: bytes, ctx: CallContext = ANONYMOUS
    ) -> Result[None]:
        return self.result(None, await self._proclaim(leader.key, leader.rev, value))

    async def resign(self, leader: LeaderKey, ctx: CallContext = ANONYMOUS) -> Result[None]:
        txn = cmds.Txn(
            (
                cmds.Compare(
                    leader.key, cmds.CompareTarget.CREATE, cmds.CompareResult.EQUAL, leader.rev
                ),
            ),
            (cmds.DeleteRange(leader.key),),
            (),
        )
        res: Result[TxnResponse] = await self.kv.txn(txn)
        return self.result(None, res.revision)

    def _current_leader(self, name: bytes) -> tuple[int, KeyValue | None]:
        prefix = name + b"/"
        r = self.node.mvcc.range(
            cmds.Range(
                prefix,
                cmds.prefix_end(prefix),
                limit=1,
                sort_order=cmds.SortOrder.ASCEND,
                sort_target=cmds.SortTarget.CREATE,
            )
        )
        return r.revision, (r.kvs[0] if r.kvs else None)

    async def leader(self, name: bytes, ctx: CallContext = ANONYMOUS) -> Result[KeyValue]:
        await self.linearize(False)
        revision, kv = self._current_leader(name)
        if kv is None:
            raise ElectionNoLeader()
        return self.result(kv, revision)

    async def observe(
        self, name: bytes, ctx: CallContext = ANONYMOUS
    ) -> AsyncIterator[Result[KeyValue]]:
        """The leader's kv now (if any) and again whenever it or its value changes."""
        prefix = name + b"/"
        hub = self.node.hub
        sub = hub.subscribe(prefix, cmds.prefix_end(prefix))
        last: KeyValue | None = None
        try:
            while True:
                revision, kv = self._current_leader(name)
                if kv is not None and kv != last:
                    yield self.result(kv, revision)
                    last = kv
                batch = await sub.get()
                if batch is None:
                    return
                if batch is BEHIND:
                    sub.resync()
        finally:
            hub.unsubscribe(sub)
