"""W6/W7 locks: a lease-bound lock key guarding read-modify-write of a shared list.

Each worker holds a *session*, as etcd's concurrency package does: one lease (TTL
3 s, raftkv's minimum) granted once and kept alive in the background, reused by every
lock attempt. An attempt creates ``locks/L`` only if absent and bound to the session
lease, then runs one critical section: read ``locks/counter`` (a JSON list), append a
unique token, write it back; release deletes the lock key only if its create
revision is still the one acquired. Every ``PAUSE_EVERY``-th critical section stalls
past the TTL with its keepalives stopped too — a GC pause — so the lease expires and
another client takes the lock while the stalled one still believes it holds it.

A session ends (lease revoked, a new one granted on the next attempt) after a stall,
and whenever an acquire or release has an unknown outcome: the lock key may then be
bound to the session's lease, and only ending the lease frees it for sure. (Before
sessions, every attempt granted and revoked its own lease: three extra requests per
attempt, which capped the workload near 100 ops/s.)

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

WORKERS_PER_LOCK = 10  # a run with C workers uses max(1, C // 10) independent locks


def lock_key(i: int) -> str:
    return f"locks/L{i}"


def counter_key(i: int) -> str:
    """The register protected by lock ``i``."""
    return f"locks/counter{i}"


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
        self.sessions: dict[int, tuple[int, asyncio.Task[None], str]] = {}
        # Independent locks, each guarding its own register: with one lock, 40 workers
        # would mostly record failed acquires while a stalled holder blocks them all.
        self.n_locks = max(1, ctx.concurrency // WORKERS_PER_LOCK)
        ctx.keys.update(counter_key(i) for i in range(self.n_locks))

    def decode_read(self, body: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        if body is None:
            return [], {"mod_revision": 0}
        return json.loads(body["value"]), {"mod_revision": body.get("mod_revision")}

    async def _keepalive(self, base: str, lease: int) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_EVERY)
            await self.ctx.http.call("POST", f"{base}/v1/lease/{lease}/keepalive")

    async def run(self) -> None:
        await super().run()
        for wid in list(self.sessions):
            await self._end_session(wid, self.sessions[wid][2])

    async def _session(self, wid: int, base: str) -> int | None:
        """The worker's session lease, granted (and kept alive) on first use."""
        if wid in self.sessions:
            return self.sessions[wid][0]
        g = await self.ctx.http.call("POST", f"{base}/v1/lease/grant", {"ttl": TTL})
        if g.kind != "http" or g.status != 200:
            return None
        lease = int(g.body["id"])
        keeper = asyncio.ensure_future(self._keepalive(base, lease))
        self.sessions[wid] = (lease, keeper, base)
        return lease

    async def _end_session(self, wid: int, base: str, revoke: bool = True) -> None:
        """Stop the keepalives and revoke (unrecorded): revoking deletes the lock key
        only if it is bound to this lease, so it can never free another holder's lock;
        if the revoke is lost the lease simply expires."""
        lease, keeper, _ = self.sessions.pop(wid)
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if revoke:
            await self.ctx.http.call("DELETE", f"{base}/v1/lease/{lease}")

    async def _release(self, base: str, lock: str, fence: int) -> bool:
        """Delete the lock key if it is still the one acquired (unrecorded). True when
        the store definitely answered (released, or the lock was no longer ours)."""
        txn = {
            "compare": [
                {"key": lock, "target": "CREATE", "result": "EQUAL", "create_revision": fence}
            ],
            "success": [{"delete": {"key": lock}}],
            "failure": [],
        }
        rep = await self.ctx.http.call("POST", f"{base}/v1/txn", txn)
        return rep.kind == "http" and rep.status == 200

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        wid = process % ctx.concurrency
        lease = await self._session(wid, base)
        if lease is None:
            return "fail"
        self.seq += 1
        token = f"{process}-{self.seq}"
        i = rng.randrange(self.n_locks)
        lock = lock_key(i)
        inv = ctx.rec.invoke(process, "acquire", lock, token, node)
        rep = await ctx.http.request("PUT", base, lock, f"?if_absent&lease={lease}", b"held")
        out = write_outcome(rep)
        if out != "ok":
            ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
            if out == "info" or (rep.kind == "http" and rep.status != 412):
                # unknown: we may hold the lock; any other refusal than "held by
                # someone" (412), e.g. the session lease is gone: start a new session
                await self._end_session(wid, base)
            return out
        fence = int(rep.body["revision"])
        ctx.rec.complete(inv, "ok", result={"create_revision": fence, "lease": lease})
        out, stalled = await self._section(process, node, base, token, i, fence, wid)
        if stalled:
            await self._end_session(wid, base, revoke=False)  # expired while stalled
        elif not await self._release(base, lock, fence):
            await self._end_session(wid, base)
        return out

    async def _section(
        self, process: int, node: str, base: str, token: str, i: int, fence: int, wid: int
    ) -> tuple[str, bool]:
        """The critical section; returns its outcome and whether it stalled."""
        ctx = self.ctx
        self.sections += 1
        stall = self.sections % PAUSE_EVERY == 0
        inv = ctx.rec.invoke(process, "append", counter_key(i), token, node)
        cur = await ctx.http.request("GET", base, counter_key(i))
        if read_outcome(cur) != "ok":
            ctx.rec.complete(inv, "fail", error=f"read: {cur.error or cur.status}")
            return "fail", False
        elems = json.loads(cur.body["value"]) if cur.status == 200 else []
        if stall:
            self.sessions[wid][1].cancel()  # the whole process stalls, keepalives too
            await asyncio.sleep(PAUSE_FOR)
        new = json.dumps([*elems, token])
        rep = await self._write(base, i, new, fence)
        out = write_outcome(rep)
        if out == "ok" and isinstance(rep.body, dict) and rep.body.get("succeeded") is False:
            ctx.rec.complete(inv, "fail", error="fence: lock no longer ours")
            return "fail", stall
        result = {"revision": rep.body.get("revision"), "stalled": stall} if out == "ok" else None
        ctx.rec.complete(
            inv,
            out,
            result=result,
            error=None if out == "ok" else rep.error or f"HTTP {rep.status}",
        )
        return out, stall

    async def _write(self, base: str, i: int, value: str, fence: int) -> Reply:
        return await self.ctx.http.request("PUT", base, counter_key(i), "", value.encode())

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        per_lock = [lockcheck.check(ops, counter_key(i)) for i in range(self.n_locks)]
        return [lockcheck.merge(per_lock), convergence.check(statuses, local)]


class FencedLockWorkload(UnfencedLockWorkload):
    name = "fenced-lock"

    async def _write(self, base: str, i: int, value: str, fence: int) -> Reply:
        txn = {
            "compare": [
                {
                    "key": lock_key(i),
                    "target": "CREATE",
                    "result": "EQUAL",
                    "create_revision": fence,
                }
            ],
            "success": [{"put": {"key": counter_key(i), "value": value}}],
            "failure": [],
        }
        return await self.ctx.http.call("POST", f"{base}/v1/txn", txn)
