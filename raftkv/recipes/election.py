"""Leader election (etcd's concurrency.Election) over the fair queue.

Candidates queue under `elections/<name>/`; the oldest key is the leader and its value
is the leader's proclamation. Keys are bound to each candidate's lease, so a dead
leader is replaced within its TTL, and `observe()` lets anyone follow the leadership.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from raftkv.client.errors import LockLost, RaftkvError
from raftkv.client.lease import LeaseKeeper
from raftkv.client.models import KeyValue
from raftkv.client.txn import Bytes, Compare, Op, to_bytes
from raftkv.recipes.lock import race_lost
from raftkv.recipes.queue import enqueue, wait_turn
from raftkv.recipes.view import PrefixView

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient


class Election:
    def __init__(
        self, client: AsyncClient, name: str, ttl: int = 10, prefix: str = "elections/"
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}{name}/"
        self.ttl = ttl
        self.lease: LeaseKeeper | None = None
        self.key = ""
        self.create_revision = 0

    @property
    def lost(self) -> asyncio.Event:
        """Set when our lease is gone: we are no longer leader (or candidate)."""
        assert self.lease is not None, "not campaigning"
        return self.lease.lost

    async def campaign(self, value: Bytes) -> None:
        """Block until elected. Cancelling withdraws the candidacy."""
        self.lease = LeaseKeeper(self.client, self.ttl)
        await self.lease.__aenter__()
        try:
            slot = await enqueue(self.client, self.prefix, self.lease.id, to_bytes(value))
            self.key, self.create_revision = slot.key, slot.create_revision
            if to_bytes(value) != next(
                (kv.value for kv in slot.queue if kv.key == slot.key.encode()), b""
            ):
                await self.proclaim(value)
            await race_lost(
                self.lease, asyncio.ensure_future(wait_turn(self.client, self.prefix, slot))
            )
        except BaseException:
            await asyncio.shield(self.resign())
            raise

    async def proclaim(self, value: Bytes) -> None:
        """Change the leader's value, only while our candidacy key is still ours."""
        if not self.key or self.lease is None:
            raise LockLost("not campaigning")
        r = await (
            self.client.txn()
            .if_(Compare.create_revision(self.key) == self.create_revision)
            .then(Op.put(self.key, value, lease=self.lease.id))
            .commit()
        )
        if not r.succeeded:
            raise LockLost(f"election key {self.key} is gone")

    async def resign(self) -> None:
        """Give up leadership (or candidacy): the next candidate takes over at once."""
        if self.key:
            with contextlib.suppress(RaftkvError):
                await self.client.delete(self.key)
        if self.lease is not None:
            await self.lease.close()
            self.lease = None
        self.key, self.create_revision = "", 0

    async def leader(self) -> KeyValue | None:
        """The current leader's key and value, None when there is none."""
        view = PrefixView(self.client, self.prefix)
        await view.load()
        return view.first_created()

    async def observe(self) -> AsyncIterator[KeyValue | None]:
        """The leader now, then each time the leader or its value changes."""
        view = PrefixView(self.client, self.prefix)
        last: tuple[bytes, bytes] | None = (b"\x00", b"")
        async with contextlib.aclosing(view.updates()) as updates:
            async for _rev in updates:
                kv = view.first_created()
                cur = (kv.key, kv.value) if kv else None
                if cur != last:
                    last = cur
                    yield kv
