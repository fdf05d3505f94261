"""A watch that survives the node serving it: on any break it reconnects to another
endpoint and resumes at (last revision delivered + 1), so the caller sees each event
exactly once and in revision order. Compaction of the resume point ends it with
`Compacted`, because the missed events no longer exist anywhere.

A stream silent for longer than the server's 10 s progress interval is treated as
broken too (a frozen or partitioned node keeps the TCP connection open).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from yarl import URL

from raftkv.client.errors import Compacted, RaftkvError, Unavailable
from raftkv.client.models import Event
from raftkv.client.transport import Transport, key_path, raise_for
from raftkv.client.txn import Bytes, to_bytes

SILENCE = 15.0  # > the server's 10 s progress interval


async def watch_stream(
    transport: Transport,
    key: Bytes,
    prefix: bool,
    range_end: Bytes | None,
    start_revision: int,
    prev_kv: bool,
) -> AsyncIterator[Event]:
    """Each event on its own (the batches below, flattened)."""
    batches = watch_batches(transport, key, prefix, range_end, start_revision, prev_kv)
    async with contextlib.aclosing(batches) as it:
        async for _rev, events in it:
            for e in events:
                yield e


async def watch_batches(
    transport: Transport,
    key: Bytes,
    prefix: bool,
    range_end: Bytes | None,
    start_revision: int,
    prev_kv: bool,
) -> AsyncIterator[tuple[int, list[Event]]]:
    """(revision, events) per revision: a txn's events arrive together."""
    next_rev = start_revision  # 0 = "from now": fixed by the first created message
    path = key_path("/v1/watch/", key)
    delay = 0.05
    broken_since: float | None = None
    while True:
        url = transport.endpoints.pick()
        params: dict[str, str] = {}
        if prefix:
            params["prefix"] = ""
        elif range_end is not None:
            params["range_end"] = to_bytes(range_end).decode("utf-8")
        if prev_kv:
            params["prev_kv"] = ""
        if next_rev:
            params["start_revision"] = str(next_rev)
        try:
            async with contextlib.aclosing(_messages(transport, url, path, params)) as msgs:
                async for msg in msgs:
                    if msg.get("created"):
                        if not next_rev:
                            next_rev = int(msg["revision"]) + 1
                        broken_since, delay = None, 0.05
                        continue
                    if "compact_revision" in msg:
                        raise Compacted(int(msg["compact_revision"]))
                    if msg.get("canceled"):
                        break
                    rev = int(msg.get("revision", 0))
                    if "events" not in msg or rev < next_rev:
                        continue  # progress, or a duplicate across a reconnect
                    yield rev, [Event.from_json(e) for e in msg["events"]]
                    next_rev = rev + 1
        except (aiohttp.ClientError, TimeoutError, ConnectionError, Unavailable):
            pass
        transport.endpoints.failed(url)
        now = time.monotonic()
        broken_since = broken_since or now
        if now - broken_since > transport.deadline * 4:
            raise Unavailable(f"watch: no endpoint answered for {now - broken_since:.0f}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def _messages(
    transport: Transport, base: str, path: URL, params: dict[str, str]
) -> AsyncIterator[dict[str, Any]]:
    url = URL(base).join(path).update_query(params)
    timeout = aiohttp.ClientTimeout(
        total=None, connect=min(transport.timeout, 2.0), sock_read=SILENCE
    )
    async with transport.session().get(url, timeout=timeout) as r:
        if r.status != 200:
            body = await r.json(content_type=None)
            if r.status == 503:
                raise Unavailable("watch refused", "unavailable", 503)
            raise_for(r.status, body)
            raise RaftkvError(f"watch: HTTP {r.status}")
        async for line in r.content:
            line = line.strip()
            if line:
                yield json.loads(line)
