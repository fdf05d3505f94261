"""W6/W7 locks: a lease-bound lock key guarding read-modify-write of a shared list.

Each attempt grants a lease (TTL 3 s, raftkv's minimum), creates ``locks/L`` only if
absent and bound to that lease, keeps the lease alive in the background, then runs
one critical section: read ``locks/counter`` (a JSON list), append a unique token,
write it back. Every ``PAUSE_EVERY``-th critical section stalls past the TTL with
its keepalives stopped too — a GC pause — so the lease expires and another client
takes the lock while the stalled one still believes it holds it.

``unfenced-lock`` writes back with a plain put: the stalled holder overwrites the
newer list and an acknowledged append is lost. This is the positive control: it
must be judged invalid. ``fenced-lock`` writes back in a txn that compares the lock
key's create revision with the one it acquired (the fencing token), so a stale
holder's write fails; it must stay valid under the same faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

from jepsen.checkers import convergence, lockcheck
from jepsen.checkers.result import CheckResult
from jepsen.client import Reply, read_outcome, write_outcome
from jepsen.history import Op
from jepsen.workloads.base import Workload

LOCK = "locks/L"
COUNTER = "locks/counter"
TTL = 3
KEEPALIVE_EVERY = 1.0
PAUSE_EVERY = 4
PAUSE_FOR = TTL + 2.5  # past expiry plus the leader's revoke round


class UnfencedLockWorkload(Workload):
    name = "unfenced-lock"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seq = 0
        self.sections = 0
        ctx.keys.add(COUNTER)

    def decode_read(self, body: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        if body is None:
            return [], {"mod_revision": 0}
        return json.loads(body["value"]), {"mod_revision": body.get("mod_revision")}

    async def _keepalive(self, base: str, lease: int) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_EVERY)
            await self.ctx.http.call("POST", f"{base}/v1/lease/{lease}/keepalive")

    async def _revoke(self, base: str, lease: int) -> None:
        """Release (unrecorded): revoking the lease deletes the lock key only if it is
        still ours, so a release can never free another holder's lock."""
        await self.ctx.http.call("DELETE", f"{base}/v1/lease/{lease}")

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        g = await ctx.http.call("POST", f"{base}/v1/lease/grant", {"ttl": TTL})
        if g.kind != "http" or g.status != 200:
            return "fail"
        lease = int(g.body["id"])
        self.seq += 1
        token = f"{process}-{self.seq}"
        inv = ctx.rec.invoke(process, "acquire", LOCK, token, node)
        rep = await ctx.http.request("PUT", base, LOCK, f"?if_absent&lease={lease}", b"held")
        out = write_outcome(rep)
        if out != "ok":
            ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
            await self._revoke(base, lease)
            return out
        fence = int(rep.body["revision"])
        ctx.rec.complete(inv, "ok", result={"create_revision": fence, "lease": lease})
        keeper = asyncio.ensure_future(self._keepalive(base, lease))
        try:
            out = await self._section(process, node, base, token, fence, keeper)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        await self._revoke(base, lease)
        return out

    async def _section(
        self, process: int, node: str, base: str, token: str, fence: int, keeper: Any
    ) -> str:
        ctx = self.ctx
        self.sections += 1
        stall = self.sections % PAUSE_EVERY == 0
        inv = ctx.rec.invoke(process, "append", COUNTER, token, node)
        cur = await ctx.http.request("GET", base, COUNTER)
        if read_outcome(cur) != "ok":
            ctx.rec.complete(inv, "fail", error=f"read: {cur.error or cur.status}")
            return "fail"
        elems = json.loads(cur.body["value"]) if cur.status == 200 else []
        if stall:
            keeper.cancel()  # the whole process stalls, its keepalive thread too
            await asyncio.sleep(PAUSE_FOR)
        new = json.dumps([*elems, token])
        rep = await self._write(base, new, fence)
        out = write_outcome(rep)
        if out == "ok" and isinstance(rep.body, dict) and rep.body.get("succeeded") is False:
            ctx.rec.complete(inv, "fail", error="fence: lock no longer ours")
            return "fail"
        result = {"revision": rep.body.get("revision"), "stalled": stall} if out == "ok" else None
        ctx.rec.complete(
            inv,
            out,
            result=result,
            error=None if out == "ok" else rep.error or f"HTTP {rep.status}",
        )
        return out

    async def _write(self, base: str, value: str, fence: int) -> Reply:
        return await self.ctx.http.request("PUT", base, COUNTER, "", value.encode())

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [lockcheck.check(ops, COUNTER), convergence.check(statuses, local)]


class FencedLockWorkload(UnfencedLockWorkload):
    name = "fenced-lock"

    async def _write(self, base: str, value: str, fence: int) -> Reply:
        txn = {
            "compare": [
                {"key": LOCK, "target": "CREATE", "result": "EQUAL", "create_revision": fence}
            ],
            "success": [{"put": {"key": COUNTER, "value": value}}],
            "failure": [],
        }
        return await self.ctx.http.call("POST", f"{base}/v1/txn", txn)
