"""Watch streams, once for every face: history replay, live events, falling behind.

A stream subscribes to the member's watch hub *before* it reads the current revision,
so no revision can slip between history and live events. It replays stored history
from `start_revision` in pages bounded in events and bytes, then follows live events;
if it falls behind (its buffer outgrew its budget, see node/watch.py) it goes back to
reading history from its next revision, so nothing is skipped and memory stays
bounded. A start revision below the compaction point ends the stream with Compacted.
Events of one revision always travel together (a txn's events are atomic).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from raftkv import testmode as tm
from raftkv.errors import Compacted, RaftkvError, Unavailable, Why
from raftkv.node.watch import BEHIND, Watcher, group_by_revision
from raftkv.service.base import ANONYMOUS, CallContext, ServiceBase
from raftkv.storage import commands as cmds
from raftkv.storage.results import Event, EventType

HISTORY_EVENTS = 1000  # events per history page...
HISTORY_BYTES = 1 << 20  # ...or bytes, whichever fills first


@dataclass(frozen=True, slots=True)
class WatchSpec:
    key: bytes
    range_end: bytes = b""
    start_revision: int = 0  # 0: from now on
    prev_kv: bool = False
    no_put: bool = False
    no_delete: bool = False
    progress_every: float | None = None  # seconds of silence before a Progress item

    def keep(self, e: Event) -> bool:
        return not (self.no_delete if e.type == EventType.DELETE else self.no_put)


@dataclass(frozen=True, slots=True)
class Events:
    revision: int
    events: list[Event]
    replay: bool = False  # read from history (a face may batch a replay into one message)


@dataclass(frozen=True, slots=True)
class Synced:
    """A history replay reached the present; live events follow."""

    revision: int


@dataclass(frozen=True, slots=True)
class Progress:
    revision: int


@dataclass(frozen=True, slots=True)
class Ended:
    """The stream is over: Compacted (its start was compacted), or Unavailable."""

    error: RaftkvError


WatchItem = Events | Progress | Ended | Synced


class WatchStream:
    """One watcher: `created_revision`, then `items()` until Ended or close()."""

    def __init__(self, service: WatchService, spec: WatchSpec, watcher: Watcher) -> None:
        self.service = service
        self.spec = spec
        self._w = watcher
        mvcc = service.node.mvcc
        self.created_revision = mvcc.current_revision()
        start = spec.start_revision
        if start and tm.mutation("watch-resume-skip"):
            start += 1  # MUTATION: resuming at r silently drops revision r's events
        self._replay_from = start if start and start <= self.created_revision else 0
        self._last = start - 1 if start > self.created_revision else self.created_revision

    def close(self) -> None:
        self.service.node.hub.unsubscribe(self._w)

    async def items(self) -> AsyncIterator[WatchItem]:
        node = self.service.node
        try:
            if self._replay_from:
                self._last = self._replay_from - 1
                async for item in self._history():
                    yield item
                    if isinstance(item, Ended):
                        return
            while True:
                get = self._w.get()
                if self.spec.progress_every is not None:
                    try:
                        batch = await asyncio.wait_for(get, self.spec.progress_every)
                    except TimeoutError:
                        yield Progress(node.mvcc.current_revision())
                        continue
                else:
                    batch = await get
                if batch is BEHIND:
                    self._w.resync()
                    async for item in self._history():
                        yield item
                        if isinstance(item, Ended):
                            return
                    continue
                if batch is None:
                    yield Ended(Unavailable(Why.STOPPING))
                    return
                assert isinstance(batch, list)
                for item in self._group([e for e in batch if e.revision > self._last]):
                    yield item
        finally:
            self.close()

    def _group(self, events: list[Event], replay: bool = False) -> list[Events]:
        out = []
        for rev, evs in group_by_revision(events):
            self._last = rev
            kept = [e for e in evs if self.spec.keep(e)]
            if kept:
                out.append(Events(rev, kept, replay))
        return out

    async def _history(self) -> AsyncIterator[WatchItem]:
        """Stored events after `_last` up to the present, page by page."""
        mvcc = self.service.node.mvcc
        spec = self.spec
        while True:
            try:
                page = mvcc.events(
                    self._last + 1,
                    spec.key,
                    spec.range_end,
                    HISTORY_EVENTS,
                    spec.prev_kv,
                    HISTORY_BYTES,
                )
            except Compacted as e:
                yield Ended(e)
                return
            start = self._last
            for item in self._group(page.events, replay=True):
                yield item
            self._last = max(self._last, page.last_revision)
            if self._last <= start or self._last >= mvcc.current_revision():
                yield Synced(self._last)
                return
            await asyncio.sleep(0)  # let the loop breathe between pages


class WatchService(ServiceBase):
    def open(self, spec: WatchSpec, ctx: CallContext = ANONYMOUS) -> WatchStream:
        """Start watching (ResourceExhausted beyond --max-watchers)."""
        self.node.check_serving()
        if spec.key:
            cmds.validate(cmds.Range(spec.key, spec.range_end), self.node.mvcc.env.max_key_size())
        watcher = self.node.hub.subscribe(spec.key, spec.range_end)
        return WatchStream(self, spec, watcher)
