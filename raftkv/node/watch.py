"""Fan-out of applied events to live watchers, bounded in bytes.

The apply path publishes each batch's events once; every watcher whose key range
matches gets them in revision order through its own buffer. A watcher that falls
behind — its buffer over its byte budget, or all buffers together over the member's —
stops being fed from memory: its buffer is dropped and it is flagged `behind`, and
its stream catches up later by reading the MVCC history from its next revision (as
etcd's unsynced watchers do). So a client that never reads costs a bounded amount of
memory whatever the write rate; only if its next revision is compacted meanwhile is
it cancelled, with the compact revision.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable

from raftkv import testmode as tm
from raftkv.errors import ResourceExhausted
from raftkv.storage.results import Event

# Per watcher and per member, bytes of events buffered before a watcher falls back to
# catching up from storage (env overrides are for tests).
WATCHER_BUFFER = int(os.environ.get("RAFTKV_WATCH_BUFFER", str(4 << 20)))
HUB_BUFFER = int(os.environ.get("RAFTKV_WATCH_HUB_BUFFER", str(64 << 20)))
DEFAULT_MAX_WATCHERS = 100_000

BEHIND = object()  # Watcher.get(): the watcher fell behind; catch up from history


def event_size(e: Event) -> int:
    n = 64 + len(e.kv.key) + len(e.kv.value)
    if e.prev_kv is not None:
        n += len(e.prev_kv.key) + len(e.prev_kv.value)
    return n


class Watcher:
    __slots__ = ("hub", "key", "range_end", "buffer", "size", "behind", "closed", "_ready")

    def __init__(self, hub: WatchHub, key: bytes, range_end: bytes) -> None:
        self.hub = hub
        self.key = key
        self.range_end = range_end
        self.buffer: deque[tuple[float, list[Event]]] = deque()  # (published at, events)
        self.size = 0
        self.behind = False
        self.closed = False
        self._ready = asyncio.Event()

    def matches(self, k: bytes) -> bool:
        if not self.range_end:
            return k == self.key
        if self.range_end == b"\x00":
            return k >= self.key
        return self.key <= k < self.range_end

    async def get(self) -> list[Event] | object | None:
        """The next batch; BEHIND if it fell behind (call `resync` and catch up from
        history); None once the hub closed."""
        while True:
            if self.buffer:
                published, batch = self.buffer.popleft()
                n = sum(event_size(e) for e in batch)
                self.size -= n
                self.hub.buffered -= n
                if self.hub.on_delivery is not None:
                    self.hub.on_delivery(time.monotonic() - published)
                return batch
            if self.behind:
                return BEHIND
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()

    def resync(self) -> None:
        """Be fed from memory again (the caller now reads history up to the present)."""
        self.behind = False

    def _drop(self) -> None:
        self.hub.buffered -= self.size
        self.buffer.clear()
        self.size = 0


class WatchHub:
    def __init__(self, max_watchers: int = DEFAULT_MAX_WATCHERS) -> None:
        self.watchers: set[Watcher] = set()
        self.max_watchers = max_watchers
        self.buffered = 0  # bytes held in every watcher's buffer
        self.fell_behind = 0  # how many times a watcher was switched to history
        # Called with each batch's seconds from publish to hand-over (metrics).
        self.on_delivery: Callable[[float], None] | None = None

    def subscribe(self, key: bytes, range_end: bytes) -> Watcher:
        if len(self.watchers) >= self.max_watchers:
            raise ResourceExhausted("watchers", self.max_watchers)
        w = Watcher(self, key, range_end)
        self.watchers.add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        if w in self.watchers:
            self.watchers.discard(w)
            w._drop()

    def publish(self, events: list[Event]) -> None:
        if not events or not self.watchers:
            return
        now = time.monotonic()
        for w in self.watchers:
            if w.behind:
                continue
            mine = [e for e in events if w.matches(e.kv.key)]
            if not mine:
                continue
            n = sum(event_size(e) for e in mine)
            if w.size + n > WATCHER_BUFFER or self.buffered + n > HUB_BUFFER:
                w._drop()
                w.behind = True
                self.fell_behind += 1
            else:
                w.buffer.append((now, mine))
                w.size += n
                self.buffered += n
            w._ready.set()

    def close(self) -> None:
        for w in list(self.watchers):
            w._drop()
            w.closed = True
            w._ready.set()
        self.watchers.clear()


def group_by_revision(events: list[Event]) -> list[tuple[int, list[Event]]]:
    """Events grouped by revision, in order: a txn's events always travel together
    (the watch guarantee etcd calls "atomic")."""
    if tm.mutation("watch-split-revision"):
        # MUTATION: one message per event, so a txn's events arrive torn apart.
        return [(e.revision, [e]) for e in events]
    out: list[tuple[int, list[Event]]] = []
    for e in events:
        if out and out[-1][0] == e.revision:
            out[-1][1].append(e)
        else:
            out.append((e.revision, [e]))
    return out
