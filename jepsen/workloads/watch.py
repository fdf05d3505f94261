"""W5 watch: writers on a small keyspace, watchers that disconnect and resume.

Writers put unique values (single puts, two-key txns that share one revision, and
deletes) under ``watch/``. ``WATCHERS`` watchers each follow the prefix from a start
revision of their own (1, or the newest revision seen so far), drop their connection
after a random 0.5–3 s (or when the node stalls or dies), and reconnect to a random
node at their last delivered revision + 1 — exactly what a correct client does. Each
connection is one ``watch`` op in the history carrying every message it delivered.
After the final heal each watcher runs one last connection until it has caught up
with the newest acknowledged write, so the checker can demand no gap up to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from jepsen.checkers import convergence, watchcheck
from jepsen.checkers.result import CheckResult
from jepsen.client import no_retry, write_outcome
from jepsen.etcd import EtcdHttp
from jepsen.history import Op
from jepsen.workloads.base import Workload

PREFIX = "watch/"
KEYS = [f"{PREFIX}k{i}" for i in range(5)]
WATCHERS = 3
WATCHER_PROCESS = 50_000
CATCH_UP = 15.0


class WatchWorkload(Workload):
    name = "watch"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seq = 0
        self.max_rev = 1  # newest revision any write was acknowledged at
        self.last = [0] * WATCHERS  # last delivered revision per watcher
        self.next: list[int | None] = [None] * WATCHERS  # where its next connection starts
        self.conns = [0] * WATCHERS
        ctx.keys.update(KEYS)
        self.stream = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=2),
        )
        no_retry(self.stream)

    async def run(self) -> None:
        rngs = [random.Random(self.ctx.rng.randrange(1 << 30)) for _ in range(WATCHERS)]
        await asyncio.gather(super().run(), *(self._watcher(i, rngs[i]) for i in range(WATCHERS)))

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        roll = rng.random()
        self.seq += 1
        val = f"{process}-{self.seq}"
        if roll < 0.6:
            key = rng.choice(KEYS)
            inv = ctx.rec.invoke(process, "write", key, val, node)
            rep = await ctx.http.request("PUT", base, key, "", val.encode())
        elif roll < 0.8:
            k1, k2 = rng.sample(KEYS, 2)
            pairs = [[k1, f"{val}a"], [k2, f"{val}b"]]
            inv = ctx.rec.invoke(process, "txn", PREFIX, pairs, node)
            body = {
                "compare": [],
                "success": [{"put": {"key": k, "value": v}} for k, v in pairs],
                "failure": [],
            }
            rep = await ctx.http.call("POST", f"{base}/v1/txn", body)
        else:
            key = rng.choice(KEYS)
            inv = ctx.rec.invoke(process, "delete", key, None, node)
            rep = await ctx.http.request("DELETE", base, key)
        out = write_outcome(rep)
        if out == "ok":
            rev = int(rep.body["revision"])
            self.max_rev = max(self.max_rev, rev)
            result = {"revision": rev}
            if inv.f == "delete":
                result["deleted"] = rep.body.get("deleted", 0)
            ctx.rec.complete(inv, "ok", result=result)
        else:
            ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
        return out

    async def _watcher(self, i: int, rng: random.Random) -> None:
        ctx = self.ctx
        while ctx.rec.now() < ctx.stop_at:
            if self.next[i] is None:
                self.next[i] = rng.choice([1, self.max_rev])
            start = self.next[i]
            assert start is not None
            await self._connect(i, rng.choice(ctx.cluster.names), start, rng.uniform(0.5, 3))

    async def _connect(
        self, i: int, node: str, start: int, duration: float, until: int | None = None
    ) -> None:
        """One recorded watch connection from ``start`` for ``duration`` seconds (or
        until revision ``until`` is delivered)."""
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        value: dict[str, Any] = {"watcher": i, "start": start, "msgs": []}
        inv = ctx.rec.invoke(WATCHER_PROCESS + i, "watch", PREFIX, value, node)
        self.conns[i] += 1
        err = None
        if isinstance(ctx.http, EtcdHttp):
            source = ctx.http.watch(self.stream, base, PREFIX, start)
        else:
            source = self._native(base, start)
        try:
            async with asyncio.timeout(duration), contextlib.aclosing(source) as msgs:
                async for msg in msgs:
                    if "compact_revision" in msg:
                        err = f"compacted at {msg['compact_revision']}"
                        break
                    if msg.get("canceled"):
                        err = f"canceled: {msg.get('reason')}"
                        break
                    if "events" not in msg:
                        continue
                    rev = int(msg["revision"])
                    evs = [
                        [e["type"], e["kv"]["key"], e["kv"].get("value"), e["kv"]["mod_revision"]]
                        for e in msg["events"]
                    ]
                    value["msgs"].append([rev, evs])
                    self.last[i] = max(self.last[i], rev)
                    self.next[i] = self.last[i] + 1
                    if until is not None and rev >= until:
                        break
        except TimeoutError:
            pass
        except (aiohttp.ClientError, OSError, ValueError) as e:
            err = f"{type(e).__name__}: {e}"
            await asyncio.sleep(0.2)  # a refused connect must not spin
        result = {"final": until is not None, "delivered_to": self.last[i]}
        ctx.rec.complete(inv, "ok", value=value, result=result, error=err)

    async def _native(self, base: str, start: int) -> AsyncIterator[dict[str, Any]]:
        """raftkv's NDJSON watch stream, one parsed message per line."""
        url = f"{base}/v1/watch/{PREFIX}?prefix&start_revision={start}"
        async with self.stream.get(url) as r:
            async for line in r.content:
                yield json.loads(line)

    async def final_reads(self) -> dict[str, dict[str, Any]]:
        local = await super().final_reads()
        rng = random.Random(self.ctx.rng.randrange(1 << 30))
        for i in range(WATCHERS):
            start = self.next[i] or 1
            if self.last[i] < self.max_rev:
                node = rng.choice(self.ctx.cluster.names)
                await self._connect(i, node, start, CATCH_UP, until=self.max_rev)
        await self.stream.close()
        return local

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [watchcheck.check(ops, PREFIX), convergence.check(statuses, local)]
