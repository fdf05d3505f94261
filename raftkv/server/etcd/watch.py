"""/v3/watch: etcd's bidirectional watch stream over one chunked HTTP response.

One HTTP stream carries many watchers (ids sequential per stream from 0, or the
client's own), each a stream of the watch service. Every response message is written
with ONE `write()` -> one HTTP chunk `{"result":...}\\n`, because clients parse chunk by
chunk; a lock keeps messages of different watchers from interleaving.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from enum import IntEnum
from typing import Any

from raftkv.errors import Compacted, RaftkvError
from raftkv.server.etcd.encode import event
from raftkv.server.etcd.errors import EtcdError
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, obj, to_bool, to_enum, to_int, unb64
from raftkv.service.watch import Ended, Events, Synced, WatchSpec
from raftkv.service.watch import WatchStream as Stream

MSG_DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
MAX_WATCHES_PER_STREAM = 1000
REPLAY_BATCH = 1000  # revisions of history per message, as etcd's watchBatchMaxRevs
Send = Callable[[dict[str, Any]], Awaitable[None]]


class FilterType(IntEnum):
    NOPUT = 0
    NODELETE = 1


def parse_create(b: dict[str, Any]) -> tuple[WatchSpec, int]:
    """A WatchCreateRequest: the spec and the client's watch id (0 = pick one)."""
    key = unb64(b.get("key"), "key")
    range_end = unb64(b.get("range_end"), "range_end")
    start = to_int(b.get("start_revision"), "start_revision")
    to_bool(b.get("progress_notify"), "progress_notify")
    filters = {
        to_enum(f, FilterType, "etcdserverpb.WatchCreateRequest_FilterType")
        for f in arr(b.get("filters"))
    }
    prev_kv = to_bool(b.get("prev_kv"), "prev_kv")
    watch_id = to_int(b.get("watch_id"), "watch_id")
    to_bool(b.get("fragment"), "fragment")
    spec = WatchSpec(
        key,
        range_end,
        start_revision=max(0, start),
        prev_kv=prev_kv,
        no_put=FilterType.NOPUT in filters,
        no_delete=FilterType.NODELETE in filters,
    )
    return spec, watch_id


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
            parse_create(obj(msg["create_request"]))
        elif msg.get("cancel_request") is not None:
            to_int(obj(msg["cancel_request"]).get("watch_id"), "watch_id")

    async def handle(self, msg: dict[str, Any]) -> None:
        """One WatchRequest (create / cancel / progress); others are ignored like etcd."""
        if msg.get("create_request") is not None:
            await self.create(*parse_create(obj(msg["create_request"])))
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

    async def _refuse(self, wid: int, reason: str) -> None:
        await self.send(
            {
                "header": self.gw.header(),
                "watch_id": str(wid),
                "created": True,
                "canceled": True,
                "cancel_reason": reason,
            }
        )

    async def create(self, spec: WatchSpec, watch_id: int) -> None:
        if watch_id:
            wid = watch_id
            if wid in self.tasks:
                await self._refuse(-1, MSG_DUPLICATE_ID)
                return
        else:
            while self.next_id in self.tasks:
                self.next_id += 1
            wid = self.next_id
            self.next_id += 1
        if len(self.tasks) >= MAX_WATCHES_PER_STREAM:
            await self._refuse(wid, f"raftkv: too many watches on one stream ({len(self.tasks)})")
            return
        try:
            stream = self.gw.s.watch.open(spec)
        except RaftkvError as e:
            await self._refuse(wid, EtcdError.of(e).message)
            return
        current = stream.created_revision
        await self.send(self._with_id(wid, {"header": self.gw.header(current), "created": True}))
        self.tasks[wid] = asyncio.create_task(self._run(wid, stream))

    async def _run(self, wid: int, stream: Stream) -> None:
        """Live events go out one revision per message; a history replay goes out as
        one message (up to REPLAY_BATCH revisions), as etcd sends a catching-up
        watcher's events."""
        spec = stream.spec
        replay: list[dict[str, Any]] = []
        revisions = 0

        async def flush() -> None:
            nonlocal replay, revisions
            if replay:
                body = {"header": self.gw.header(), "events": replay}
                await self.send(self._with_id(wid, body))
            replay, revisions = [], 0

        try:
            async for item in stream.items():
                if isinstance(item, Events) and item.replay:
                    replay += [event(e, spec.prev_kv) for e in item.events]
                    revisions += 1
                    if revisions >= REPLAY_BATCH:
                        await flush()
                elif isinstance(item, Synced):
                    await flush()
                elif isinstance(item, Events):
                    body = {
                        "header": self.gw.header(item.revision),
                        "events": [event(e, spec.prev_kv) for e in item.events],
                    }
                    await self.send(self._with_id(wid, body))
                elif isinstance(item, Ended):
                    await flush()
                    if isinstance(item.error, Compacted):
                        body = {
                            "header": self.gw.header(0),
                            "canceled": True,
                            "compact_revision": str(item.error.compact_revision),
                        }
                    else:
                        reason = EtcdError.of(item.error).message
                        body = {
                            "header": self.gw.header(),
                            "canceled": True,
                            "cancel_reason": reason,
                        }
                    await self.send(self._with_id(wid, body))
                    self.tasks.pop(wid, None)
                    return
        finally:
            stream.close()

    async def close(self) -> None:
        for t in self.tasks.values():
            t.cancel()
        for t in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()
