"""A fair distributed lock with fencing (etcd's concurrency.Mutex, plus guarded_put).

    async with client.lock("jobs", ttl=10) as lock:
        await lock.guarded_put("jobs/counter", b"42")

Holding the lock means owning the oldest key under `locks/<name>/`. That key is bound
to a lease, so a crashed holder releases the lock within the TTL. A holder that was
merely paused (GC, SIGSTOP) may wake up after its lease expired and someone else took
the lock: its writes must be fenced, which `guarded_put` does by committing only while
the lock key still exists with the create revision it had (`fencing_token`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from raftkv.client.errors import LockLost, RaftkvError
from raftkv.client.lease import LeaseKeeper
from raftkv.client.models import TxnResult
from raftkv.client.txn import Bytes, Compare, Op
from raftkv.recipes.queue import enqueue, wait_turn

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient


async def race_lost(lease: LeaseKeeper, work: asyncio.Future[None] | asyncio.Task[None]) -> None:
    """Await `work`, but raise LockLost the moment the lease is declared lost."""
    lost = asyncio.ensure_future(lease.lost.wait())
    try:
        done, _ = await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
    if work not in done:
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, RaftkvError):
            await work
        raise LockLost(f"lease {lease.id:x} lost while waiting")
    work.result()


class Lock:
    def __init__(
        self,
        client: AsyncClient,
        name: str,
        ttl: int = 10,
        timeout: float | None = None,
        prefix: str = "locks/",
    ) -> None:
        self.client = client
        self.prefix = f"{prefix}{name}/"
        self.ttl = ttl
        self.timeout = timeout
        self.lease: LeaseKeeper | None = None
        self.key = ""
        self.fencing_token = 0

    @property
    def lost(self) -> asyncio.Event:
        """Set when the lock's lease is gone: stop doing the guarded work."""
        assert self.lease is not None, "not acquired"
        return self.lease.lost

    async def acquire(self) -> Lock:
        """Block until held; TimeoutError after `timeout`. Leaves nothing behind on failure."""
        self.lease = LeaseKeeper(self.client, self.ttl)
        await self.lease.__aenter__()
        try:
            slot = await enqueue(self.client, self.prefix, self.lease.id, b"")
            self.key = slot.key
            wait = asyncio.ensure_future(wait_turn(self.client, self.prefix, slot))
            await asyncio.wait_for(race_lost(self.lease, wait), self.timeout)
            self.fencing_token = slot.create_revision
            return self
        except BaseException:
            await asyncio.shield(self._cleanup())
            raise

    async def release(self) -> None:
        await self._cleanup()

    async def _cleanup(self) -> None:
        """Delete our key and revoke the lease; best effort (the TTL is the backstop)."""
        if self.key:
            with contextlib.suppress(RaftkvError):
                await self.client.delete(self.key)
        if self.lease is not None:
            await self.lease.close()
        self.key, self.fencing_token = "", 0

    async def __aenter__(self) -> Lock:
        return await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()

    def guarded(self) -> Compare:
        """The condition under which this holder's writes are still valid."""
        return Compare.create_revision(self.key)

    async def guarded_txn(self, *ops: dict[str, object]) -> TxnResult:
        """Run `ops` only if we still hold the lock; LockLost otherwise."""
        if not self.fencing_token:
            raise LockLost("lock not held")
        r = await self.client.txn().if_(self.guarded() == self.fencing_token).then(*ops).commit()
        if not r.succeeded:
            raise LockLost(f"lock key {self.key} is gone (fencing token {self.fencing_token})")
        return r

    async def guarded_put(self, key: Bytes, value: Bytes) -> int:
        """Put `key` only while the lock is ours; the revision, or LockLost."""
        return (await self.guarded_txn(Op.put(key, value))).revision
