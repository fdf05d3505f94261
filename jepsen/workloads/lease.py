"""W8 leases: grant short leases, attach a key, then keep alive, abandon or revoke.

Each worker runs lease lifecycles one after another: ``grant`` (TTL 3 s, raftkv's
minimum), ``attach`` a key to it, then one policy — ``keep`` (keepalive every second
for a few seconds, then stop), ``abandon`` (never renew) or ``revoke`` — while reading
the key at the worker's share of ``--rate`` (at most every half second), and keeps
reading for ``TTL + 3`` s after the last renewal so expiry is observed. Keepalives
and reads are interleaved on one process, so every recorded op has a clean
invoke/complete pair. The final reads wait until every lease is past its expiry
bound, then read every key from every node.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from jepsen.checkers import convergence, leasecheck
from jepsen.checkers.result import CheckResult
from jepsen.client import Reply, read_outcome, write_outcome
from jepsen.history import Event, Op, pair
from jepsen.workloads.base import Workload

TTL = 3
GRACE = 6.0
MAX_READ_EVERY = 0.5
FRESH_PROCESS = 20_000


class LeaseWorkload(Workload):
    name = "lease"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seq = 0
        self.next_process = FRESH_PROCESS
        self.last_renewal = 0.0  # recorder time of the newest renewal's return
        # Each worker reads its key at its share of the run's --rate, so the workload
        # offers the same load as the others (at most every 0.5 s, at least every 20 ms).
        self.read_every = min(MAX_READ_EVERY, max(0.02, ctx.concurrency / ctx.rate))

    def _fresh(self) -> int:
        self.next_process += 1
        return self.next_process

    def _complete(self, inv: Event, rep: Reply, out: str, **result: Any) -> str:
        if out == "ok":
            self.ctx.rec.complete(inv, "ok", result=result)
        else:
            self.ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
        return out

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        """One lease lifecycle; returns ``ok`` because it retires its own processes."""
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        self.seq += 1
        key = f"lease/{process}-{self.seq}"
        inv = ctx.rec.invoke(process, "grant", key, None, node)
        rep = await ctx.http.call("POST", f"{base}/v1/lease/grant", {"ttl": TTL})
        if self._complete(inv, rep, write_outcome(rep), **self._body(rep)) != "ok":
            return "ok" if write_outcome(rep) == "fail" else "info"
        lease, ttl = int(rep.body["id"]), float(rep.body["ttl"])
        self.last_renewal = max(self.last_renewal, ctx.rec.now())
        inv = ctx.rec.invoke(process, "attach", key, lease, node)
        rep = await ctx.http.request("PUT", base, key, f"?lease={lease}", b"v")
        out = self._complete(inv, rep, write_outcome(rep), lease=lease)
        if out != "ok":
            return "ok" if out == "fail" else "info"
        ctx.keys.add(key)
        policy = rng.choice(["keep", "abandon", "revoke"])
        t_attach = ctx.rec.now()
        # Some leases are kept alive for up to 10 s (never past the run's end): only a
        # lease renewed well past its grant across a failover tells a fresh TTL from a
        # stale deadline (raftkv's lease-no-ttl-refresh mutation).
        keep_for = min(rng.uniform(2, 10), max(2.0, ctx.stop_at - t_attach))
        keep_for = keep_for if policy == "keep" else 0.0
        revoke_at = t_attach + rng.uniform(0.5, 2) if policy == "revoke" else None
        last_renew = ctx.rec.now()
        next_ka = t_attach + 1.0
        while ctx.rec.now() < last_renew + ttl + 3:
            now = ctx.rec.now()
            if policy == "keep" and now < t_attach + keep_for and now >= next_ka:
                next_ka = now + 1.0
                out = await self._keepalive(process, node, base, key, lease)
                if out == "info":
                    return "info"
                last_renew = ctx.rec.now()
            if revoke_at is not None and now >= revoke_at:
                revoke_at = None
                inv = ctx.rec.invoke(process, "revoke", key, lease, node)
                rep = await ctx.http.call("DELETE", f"{base}/v1/lease/{lease}")
                out = "ok" if rep.kind == "http" and rep.status == 404 else write_outcome(rep)
                if self._complete(inv, rep, out, **self._body(rep)) == "info":
                    return "info"
            inv = ctx.rec.invoke(process, "read", key, None, node)
            rep = await ctx.http.request("GET", base, key)
            out = read_outcome(rep)
            if out == "ok":
                value = rep.body.get("value") if rep.status == 200 else None
                ctx.rec.complete(inv, "ok", value=value, result={"status": rep.status})
            else:
                ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
                if out == "info":
                    return "info"
            await asyncio.sleep(self.read_every * rng.uniform(0.5, 1.5))
        return "ok"

    async def _keepalive(self, process: int, node: str, base: str, key: str, lease: int) -> str:
        ctx = self.ctx
        inv = ctx.rec.invoke(process, "keepalive", key, lease, node)
        rep = await ctx.http.call("POST", f"{base}/v1/lease/{lease}/keepalive")
        if rep.kind == "http" and rep.status == 404:
            ctx.rec.complete(inv, "ok", result={"ttl": None, "found": False})
            return "ok"
        out = self._complete(inv, rep, write_outcome(rep), **self._body(rep))
        if out == "ok":
            self.last_renewal = max(self.last_renewal, ctx.rec.now())
        return out

    @staticmethod
    def _body(rep: Reply) -> dict[str, Any]:
        return rep.body if rep.kind == "http" and isinstance(rep.body, dict) else {}

    async def _worker(self, wid: int) -> None:
        """Like the base worker, but an ``info`` lifecycle retires to a fresh process
        id that cannot collide with another worker's."""
        ctx = self.ctx
        process = wid
        node = ctx.cluster.names[wid % len(ctx.cluster.names)]
        rng = random.Random(ctx.rng.randrange(1 << 30))
        while ctx.rec.now() < ctx.stop_at:
            if await self.one_op(process, node, rng) == "info":
                process = self._fresh()
            else:
                process = self._fresh() if process >= FRESH_PROCESS else process
            await asyncio.sleep(rng.uniform(0, 0.3))

    async def final_reads(self) -> dict[str, dict[str, Any]]:
        # Past every lease's expiry bound as the checker computes it: time in which
        # nothing succeeded (no leader) pushes the bound back.
        gaps = leasecheck.outages(pair(self.ctx.rec.events))
        bound = leasecheck.expiry_bound(self.last_renewal, TTL + GRACE + 0.5, gaps)
        wait = bound - self.ctx.rec.now()
        if wait > 0:
            await asyncio.sleep(wait)
        return await super().final_reads()

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [leasecheck.check(ops, grace=GRACE), convergence.check(statuses, local)]
