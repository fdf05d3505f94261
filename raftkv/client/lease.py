"""A lease kept alive in the background for the lifetime of an `async with` block.

Keepalives go every ttl/3, so two can be lost before the lease expires. The lease is
declared lost (the `lost` event is set, `on_lost` is called) as soon as the server says
it is gone, or when no keepalive has succeeded for a whole TTL — at that point the
server has expired it anyway, and anything bound to it must be treated as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from raftkv.client.errors import LeaseNotFound, RaftkvError

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient


class LeaseKeeper:
    def __init__(
        self, client: AsyncClient, ttl: int, on_lost: Callable[[LeaseKeeper], Any] | None = None
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.on_lost = on_lost
        self.id = 0
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LeaseKeeper:
        info = await self.client.grant(self.ttl)
        self.id, self.ttl = info.id, info.ttl
        self._task = asyncio.create_task(self._keep(), name=f"lease-{self.id:x}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, revoke: bool = True) -> None:
        """Stop the keepalives and revoke, so bound keys go now, not after the TTL."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if revoke and not self.lost.is_set():
            with contextlib.suppress(RaftkvError):
                await self.client.revoke(self.id)

    def _mark_lost(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            if self.on_lost is not None:
                self.on_lost(self)

    async def _keep(self) -> None:
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.client.keepalive_once(self.id, deadline=self.ttl / 3)
                last_ok = time.monotonic()
            except LeaseNotFound:
                self._mark_lost()
                return
            except RaftkvError:
                if time.monotonic() - last_ok >= self.ttl:
                    self._mark_lost()
                    return
