"""/v3/watch: etcd's bidirectional watch stream over one chunked HTTP response.

One HTTP stream carries many watchers (ids sequential per stream from 0, or the
client's own), each fed by its own WatchHub subscription. Every response message is
written with ONE `write()` -> one HTTP chunk `{"result":...}\n`, because clients parse
chunk by chunk; a lock keeps messages of different watchers from interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any

from raftkv.node.watch import group_by_revision
from raftkv.server.etcd.encode import event
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, obj, to_bool, to_enum, to_int, unb64
from raftkv.storage.errors import RevisionCompactedError
from raftkv.storage.results import Event, EventType

HISTORY_PAGE = 1000
MSG_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FilterType(IntEnum):
    NOPUT = 0
    NODELETE = 1


class _Spec:
    """A parsed WatchCreateRequest."""

    def __init__(self, b: dict[str, Any]) -> None:
        self.key = unb64(b.get("key"), "key")
        self.range_end = unb64(b.get("range_end"), "range_end")
        self.start = to_int(b.get("start_revision"), "start_revision")
        to_bool(b.get("progress_notify"), "progress_notify")
        filters = {
            to_enum(f, FilterType, "etcdserverpb.WatchCreateRequest_FilterType")
            for f in arr(b.get("filters"))
        }
        self.no_put = FilterType.NOPUT in filters
        self.no_delete = FilterType.NODELETE in filters
        self.prev_kv = to_bool(b.get("prev_kv"), "prev_kv")
        self.watch_id = to_int(b.get("watch_id"), "watch_id")
        to_bool(b.get("fragment"), "fragment")

    def keep(self, e: Event) -> bool:
        if e.type == EventType.PUT:
            return not self.no_put
        return not self.no_delete


class WatchStream:
    def __init__(self, gw: Gateway, send: Send) -> None:
        self.gw = gw
        self.send = send
        self.next_id = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def _with_id(self, wid: int, body: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"header": body.pop("header")}
        if wid:
            out["watch_id"] = str(wid)
        out.update(body)
        return out

    @staticmethod
    def check(msg: dict[str, Any]) -> None:
        """Decode-time validation (bad base64/enum), which etcd reports before any
        stream output for the first message."""
        if msg.get("create_request") is not None:
            _Spec(obj(msg["create_request"]))
        elif msg.get("cancel_request") is not None:
            to_int(obj(msg["cancel_request"]).get("watch_id"), "watch_id")

    async def handle(self, msg: dict[str, Any]) -> None:
        """One WatchRequest (create / cancel / progress); others are ignored like etcd."""
        if msg.get("create_request") is not None:
            await self.create(_Spec(obj(msg["create_request"])))
        elif msg.get("cancel_request") is not None:
            wid = to_int(obj(msg["cancel_request"]).get("watch_id"), "watch_id")
            task = self.tasks.pop(wid, None)
            if task is None:
                return  # etcd answers nothing for an unknown id
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.send(self._with_id(wid, {"header": self.gw.header(), "canceled": True}))
        elif msg.get("progress_request") is not None:
            await self.send({"header": self.gw.header(), "watch_id": "-1"})

    async def create(self, spec: _Spec) -> None:
        if spec.watch_id:
            wid = spec.watch_id
            if wid in self.tasks:
                await self.send(
                    {
                        "header": self.gw.header(),
                        "watch_id": "-1",
                        "created": True,
                        "canceled": True,
                        "cancel_reason": MSG_DUPLICATE_ID,
                    }
                )
                return
        else:
            while self.next_id in self.tasks:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        hub = self.gw.node.hub
        sub = hub.subscribe(spec.key, spec.range_end)
        current = self.gw.node.mvcc.current_revision()
        await self.send(self._with_id(wid, {"header": self.gw.header(current), "created": True}))
        self.tasks[wid] = asyncio.create_task(self._run(wid, spec, sub, current))

    async def _replay(self, wid: int, spec: _Spec, after: int) -> int | None:
        """History after `after` up to now as one message; the revision covered, or
        None after sending the compaction cancel."""
        mvcc = self.gw.node.mvcc
        current = mvcc.current_revision()
        events: list[Event] = []
        last = after
        try:
            while last < current:
                page = mvcc.events(last + 1, spec.key, spec.range_end, HISTORY_PAGE, spec.prev_kv)
                events += [e for e in page.events if e.revision <= current]
                if page.last_revision <= last:
                    break
                last = page.last_revision
        except RevisionCompactedError:
            hdr = self.gw.header(0)
            await self.send(
                self._with_id(
                    wid,
                    {
                        "header": hdr,
                        "canceled": True,
                        "compact_revision": str(mvcc.compact_revision()),
                    },
                )
            )
            return None
        kept = [event(e, spec.prev_kv) for e in events if spec.keep(e)]
        if kept:
            await self.send(self._with_id(wid, {"header": self.gw.header(), "events": kept}))
        return current

    async def _run(self, wid: int, spec: _Spec, sub: Any, current: int) -> None:
        hub = self.gw.node.hub
        try:
            last: int | None = current
            if spec.start and spec.start <= current:
                last = await self._replay(wid, spec, spec.start - 1)
                if last is None:
                    self.tasks.pop(wid, None)
                    return
            elif spec.start:
                last = spec.start - 1
            assert last is not None
            while True:
                batch = await sub.queue.get()
                if batch is None:  # fell behind: resubscribe and catch up from history
                    hub.unsubscribe(sub)
                    sub = hub.subscribe(spec.key, spec.range_end)
                    caught = await self._replay(wid, spec, last)
                    if caught is None:
                        self.tasks.pop(wid, None)
                        return
                    last = caught
                    continue
                for rev, evs in group_by_revision([e for e in batch if e.revision > last]):
                    last = rev
                    kept = [event(e, spec.prev_kv) for e in evs if spec.keep(e)]
                    if kept:
                        body = {"header": self.gw.header(rev), "events": kept}
                        await self.send(self._with_id(wid, body))
        finally:
            hub.unsubscribe(sub)

    async def close(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        for t in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()
