"""/v1/watch: a watch as newline-delimited JSON (or Server-Sent Events).

Messages: `{"created": true, "revision": N}`, then one message per revision with its
events, `{"progress": true, ...}` after 10 s of silence, and a final message with
`compact_revision` if the start revision was compacted. The stream's semantics
(history, live events, falling behind) are the watch service's.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from raftkv.errors import Compacted
from raftkv.server.v1 import encode
from raftkv.server.v1.base import V1
from raftkv.server.v1.errors import bad_request, to_api_error
from raftkv.server.v1.kv import _key_range
from raftkv.server.v1.params import path_key
from raftkv.service.watch import Ended, Events, Progress, WatchSpec

PROGRESS_EVERY = 10.0


class WatchApi:
    def __init__(self, v1: V1) -> None:
        self.v1 = v1

    async def watch(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        key, range_end = _key_range(q, path_key(req))
        if not key and not range_end:
            raise bad_request("key is empty (use ?prefix to watch everything)")
        want_prev = q.flag("prev_kv")
        spec = WatchSpec(
            key,
            range_end,
            start_revision=q.int("start_revision"),
            prev_kv=want_prev,
            progress_every=PROGRESS_EVERY,
        )
        sse = "text/event-stream" in req.headers.get("Accept", "")
        self.v1.gate.enter()
        try:
            stream = self.v1.s.watch.open(spec)
        except BaseException:
            self.v1.gate.leave()
            raise
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
                "Cache-Control": "no-cache",
            }
        )

        async def send(obj: dict[str, Any]) -> None:
            line = json.dumps(obj)  # spaced, like every native answer
            await resp.write((f"data: {line}\n\n" if sse else line + "\n").encode())

        def events_json(evs: list[Any]) -> list[dict[str, Any]]:
            out = [encode.event_json(e) for e in evs]
            if not want_prev:
                for o in out:
                    o.pop("prev_kv", None)
            return out

        try:
            await resp.prepare(req)
            await send({"created": True, "revision": stream.created_revision})
            async for item in stream.items():
                if isinstance(item, Events):
                    await send({"revision": item.revision, "events": events_json(item.events)})
                elif isinstance(item, Progress):
                    await send({"progress": True, "revision": item.revision})
                elif isinstance(item, Ended):
                    err = to_api_error(item.error)
                    msg: dict[str, Any] = {
                        "canceled": True,
                        "error": {"code": err.code, "message": err.message},
                    }
                    if isinstance(item.error, Compacted):
                        msg["compact_revision"] = item.error.compact_revision
                    await send(msg)
                    break
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            stream.close()
            self.v1.gate.leave()
        return resp

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/watch/{key:[\\s\\S]*}", self.watch)
