"""`Client`: the same API as `AsyncClient`, blocking.

It runs one private event loop in a daemon thread and submits each call to it, so the
retry, failover and watch-resume logic is exactly the async client's (one
implementation, one set of semantics), and it works from any thread, even one that
already runs its own event loop.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from raftkv.client.aio import AsyncClient
from raftkv.client.models import Event
from raftkv.client.txn import Txn

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="raftkv")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class SyncLease:
    """`with client.lease(ttl) as lease:`; `lease.lost` is a threading.Event here."""

    def __init__(self, client: Client, ttl: int) -> None:
        self._client = client
        self.lost = threading.Event()
        self._keeper = client.aio.lease(ttl, on_lost=lambda _k: self.lost.set())
        self.id = 0
        self.ttl = ttl

    def __enter__(self) -> SyncLease:
        self._client._loop.run(self._keeper.__aenter__())
        self.id, self.ttl = self._keeper.id, self._keeper.ttl
        return self

    def __exit__(self, *exc: object) -> None:
        self._client._loop.run(self._keeper.close())


class Client:
    """Blocking twin of `AsyncClient`: every coroutine method becomes a plain call."""

    def __init__(
        self,
        endpoints: list[str] | str | None = None,
        timeout: float = 5.0,
        deadline: float | None = None,
    ) -> None:
        self._loop = _Loop()
        self.aio = AsyncClient(endpoints, timeout=timeout, deadline=deadline)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run(self.aio.close())
        self._loop.stop()

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.aio, name)
        if not asyncio.iscoroutinefunction(fn):
            return fn

        @functools.wraps(fn)
        def call(*args: Any, **kw: Any) -> Any:
            return self._loop.run(fn(*args, **kw))

        return call

    def txn(self) -> Txn[Any]:
        return Txn(lambda body: self._loop.run(self.aio.txn_raw(body)))

    def lease(self, ttl: int) -> SyncLease:
        return SyncLease(self, ttl)

    def watch(self, key: bytes | str, **kw: Any) -> Iterator[Event]:
        """A blocking iterator of events; closing it (or breaking out) ends the watch."""
        agen = self.aio.watch(key, **kw)
        try:
            while True:
                try:
                    yield self._loop.run(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(agen.aclose())  # type: ignore[attr-defined]
