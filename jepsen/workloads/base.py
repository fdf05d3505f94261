"""What every workload shares: the run context, pacing, and final reads per node."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from jepsen.checkers.result import CheckResult
from jepsen.client import Http, read_outcome
from jepsen.cluster import Cluster
from jepsen.history import Op, Recorder

FINAL_PROCESS = 100_000
FINAL_GIVE_UP = 3  # unanswered final reads in a row after which a node's are skipped


@dataclass
class Context:
    cluster: Cluster
    http: Http
    rec: Recorder
    rng: random.Random
    concurrency: int
    rate: float
    stop_at: float  # recorder time at which workers stop invoking
    keys: set[str] = field(default_factory=set)


class Workload:
    """Subclasses implement ``one_op``; the base runs workers and final reads."""

    name = "base"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        await asyncio.gather(*(self._worker(w) for w in range(self.ctx.concurrency)))

    async def _worker(self, wid: int) -> None:
        ctx = self.ctx
        process = wid
        node = ctx.cluster.names[wid % len(ctx.cluster.names)]
        rng = random.Random(ctx.rng.randrange(1 << 30))
        interval = ctx.concurrency / ctx.rate
        while ctx.rec.now() < ctx.stop_at:
            t0 = ctx.rec.now()
            outcome = await self.one_op(process, node, rng)
            if outcome == "info":
                process += ctx.concurrency  # a process with an open op is retired
            wait = rng.uniform(0.5, 1.5) * interval - (ctx.rec.now() - t0)
            if wait > 0:
                await asyncio.sleep(wait)

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        raise NotImplementedError

    async def final_reads(self) -> dict[str, dict[str, Any]]:
        """A recorded linearizable read of every key from every node, then a
        serializable (local) read for the convergence check."""
        ctx = self.ctx
        local: dict[str, dict[str, Any]] = {}
        for i, n in enumerate(ctx.cluster.names):
            base = ctx.cluster.nodes[n].url
            local[n] = {}
            unanswered = 0  # consecutive linearizable reads on this node not answered
            for key in sorted(ctx.keys):
                # A node whose reads go unanswered has no leader to confirm them: after
                # FINAL_GIVE_UP of them in a row the rest are not invoked (a broken
                # cluster would otherwise cost keys x nodes x timeout), while the
                # local reads below still feed the convergence check.
                if unanswered < FINAL_GIVE_UP:
                    inv = ctx.rec.invoke(FINAL_PROCESS + i, "read", key, None, n)
                    rep = await ctx.http.request("GET", base, key)
                    out = read_outcome(rep)
                    unanswered = 0 if out == "ok" else unanswered + 1
                    if out == "ok":
                        value, result = self.decode_read(rep.body if rep.status == 200 else None)
                        result.update(final=True, revision=rep.body.get("revision"))
                        ctx.rec.complete(inv, "ok", value=value, result=result)
                    else:
                        ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
                loc = await ctx.http.request("GET", base, key, "?serializable")
                if loc.kind == "http" and loc.status == 200:
                    local[n][key] = [loc.body.get("value"), loc.body.get("mod_revision")]
                elif loc.kind == "http" and loc.status == 404:
                    local[n][key] = None
        return local

    async def recorded_read(
        self, process: int, node: str, key: str, query: str = "", http: Http | None = None
    ) -> str:
        """One recorded linearizable GET of ``key`` on ``node``: the value as the
        workload decodes it, with its mod and header revision."""
        ctx = self.ctx
        inv = ctx.rec.invoke(process, "read", key, None, node)
        rep = await (http or ctx.http).request("GET", ctx.cluster.nodes[node].url, key, query)
        out = read_outcome(rep)
        if out == "ok":
            value, result = self.decode_read(rep.body if rep.status == 200 else None)
            result["revision"] = rep.body.get("revision") if rep.body else None
            ctx.rec.complete(inv, "ok", value=value, result=result)
        else:
            ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
        return out

    def decode_read(self, body: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        """(value for the history, result facts) from a GET body; None body = absent."""
        if body is None:
            return None, {"mod_revision": 0}
        return body.get("value"), {"mod_revision": body.get("mod_revision")}

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        raise NotImplementedError
