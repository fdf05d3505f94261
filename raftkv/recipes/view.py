"""A live, consistent copy of every key under a prefix.

It loads the prefix at one revision R, then applies the watch from R + 1, so the copy
always equals the store's state at some revision (never a mix of two): the basis of
the config registry, the service registry's live view and election observation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from raftkv.client.models import KeyValue

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient


class PrefixView:
    def __init__(self, client: AsyncClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.kvs: dict[bytes, KeyValue] = {}
        self.revision = 0

    async def load(self) -> int:
        r = await self.client.get_prefix(self.prefix)
        self.kvs = {kv.key: kv for kv in r.kvs}
        self.revision = r.revision
        return r.revision

    async def updates(self) -> AsyncIterator[int]:
        """Yield the revision once loaded and again after each change is applied."""
        if not self.revision:
            await self.load()
        yield self.revision
        batches = self.client.watch_batches(
            self.prefix, prefix=True, start_revision=self.revision + 1
        )
        async with contextlib.aclosing(batches) as it:
            async for rev, events in it:
                for e in events:
                    if e.type == "PUT":
                        self.kvs[e.kv.key] = e.kv
                    else:
                        self.kvs.pop(e.kv.key, None)
                self.revision = rev
                yield rev

    def relative(self) -> dict[str, bytes]:
        """{key without the prefix: value}."""
        n = len(self.prefix.encode())
        return {k[n:].decode("utf-8", "replace"): kv.value for k, kv in self.kvs.items()}

    def first_created(self) -> KeyValue | None:
        """The key with the lowest create revision: the lock holder / elected leader."""
        return min(self.kvs.values(), key=lambda kv: kv.create_revision, default=None)
