"""Fan-out of applied events to live watchers.

The apply path publishes each batch's events once; every watcher whose key range
matches gets them in revision order through its own bounded queue. A watcher that
falls too far behind is dropped from the live feed (flagged `overflowed`) rather than
stalling apply or growing memory; its stream then catches up from stored history.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from raftkv import testmode as tm
from raftkv.storage.results import Event

# Batches buffered per watcher before it falls back to catching up from storage.
WATCH_QUEUE = int(os.environ.get("RAFTKV_WATCH_QUEUE", "10000"))


@dataclass(eq=False)
class Watcher:
    key: bytes
    range_end: bytes
    queue: asyncio.Queue[list[Event] | None] = field(
        default_factory=lambda: asyncio.Queue(WATCH_QUEUE)
    )
    overflowed: bool = False

    def matches(self, k: bytes) -> bool:
        if not self.range_end:
            return k == self.key
        if self.range_end == b"\x00":
            return k >= self.key
        return self.key <= k < self.range_end


class WatchHub:
    def __init__(self) -> None:
        self.watchers: set[Watcher] = set()

    def subscribe(self, key: bytes, range_end: bytes) -> Watcher:
        w = Watcher(key, range_end)
        self.watchers.add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        self.watchers.discard(w)

    def publish(self, events: list[Event]) -> None:
        if not events or not self.watchers:
            return
        for w in list(self.watchers):
            mine = [e for e in events if w.matches(e.kv.key)]
            if not mine:
                continue
            try:
                w.queue.put_nowait(mine)
            except asyncio.QueueFull:
                w.overflowed = True
                self.watchers.discard(w)
                w.queue._queue.clear()  # type: ignore[attr-defined]
                w.queue.put_nowait(None)

    def close(self) -> None:
        for w in list(self.watchers):
            w.queue._queue.clear()  # type: ignore[attr-defined]
            w.queue.put_nowait(None)
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
