"""W1 register: get / put / CAS on independent keys with unique values.

Workers share a few key slots; a slot moves to a fresh key after 200 ops or 8
unknown-outcome writes, which keeps every per-key WGL search small (research 3.6).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from jepsen.checkers import convergence, linearizable, revision
from jepsen.checkers.result import CheckResult
from jepsen.client import Http, Reply, retried_write_outcome, write_outcome
from jepsen.history import Op
from jepsen.workloads.base import Workload

OPS_PER_KEY = 200
INFO_PER_KEY = 8


@dataclass
class Slot:
    index: int
    gen: int = 0
    ops: int = 0
    infos: int = 0
    recent: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"reg/{self.index}/{self.gen}"


class RegisterWorkload(Workload):
    name = "register"
    read_query = ""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.slots = [Slot(i) for i in range(max(1, ctx.concurrency // 3))]
        self.seq = 0

    def _slot(self, rng: random.Random) -> Slot:
        s = rng.choice(self.slots)
        if s.ops >= OPS_PER_KEY or s.infos >= INFO_PER_KEY:
            s.gen, s.ops, s.infos, s.recent = s.gen + 1, 0, 0, []
        s.ops += 1
        self.ctx.keys.add(s.key)
        return s

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        s = self._slot(rng)
        key = s.key
        roll = rng.random()
        if roll < 0.4:
            return await self.recorded_read(process, node, key, self.read_query, self.reader())
        self.seq += 1
        new = f"{process}-{self.seq}"
        if roll < 0.75:
            f, value, query = "write", new, ""
        else:
            expected = rng.choice(s.recent) if s.recent else None
            f, value = "cas", [expected, new]
            query = "?if_absent" if expected is None else f"?if_value={expected}"
        inv = ctx.rec.invoke(process, f, key, value, node)
        rep, out = await self.put(node, key, query, new.encode(), rng)
        if out == "ok":
            ctx.rec.complete(inv, "ok", result={"revision": rep.body.get("revision")})
        elif out == "fail" and rep.kind == "http" and rep.status == 412:
            ctx.rec.complete(inv, "fail", result={"current": rep.body.get("current")}, error="412")
        else:
            ctx.rec.complete(inv, out, error=rep.error or f"HTTP {rep.status}")
        if out == "info":
            s.infos += 1
        if out != "fail":
            s.recent = [*s.recent[-2:], new]
        return out

    def reader(self) -> Http:
        """The client for reads (the retrying variant uses its short-timeout one)."""
        return self.ctx.http

    async def put(
        self, node: str, key: str, query: str, body: bytes, rng: random.Random
    ) -> tuple[Reply, str]:
        """One write request (the reply and its outcome); the retrying variant overrides."""
        rep = await self.ctx.http.request("PUT", self.ctx.cluster.nodes[node].url, key, query, body)
        return rep, write_outcome(rep)

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [
            linearizable.check(ops),
            revision.check(ops),
            convergence.check(statuses, local),
        ]


class StaleRegisterWorkload(RegisterWorkload):
    """Positive control: reads with ``?serializable`` are served from a node's local
    state without a ReadIndex round, so an isolated or lagging node answers stale.
    Under a partition this history must be judged invalid; if it is not, the harness
    (not raftkv) is broken."""

    name = "stale-register"
    read_query = "?serializable"


class RetryingRegisterWorkload(RegisterWorkload):
    """The register with a retrying client, for the no-dedup mutation and its controls.

    Real clients (etcd's among them) retry a write whose outcome they did not learn.
    Here that is done in the open: a write carries a client request id
    (``?request_id=``), an unknown outcome (timeout, reset, 5xx) or a refusal is
    retried with the SAME id on the next node, after a short client timeout, and the
    recorded op spans every attempt with the final attempt's outcome
    (``retried_write_outcome``). raftkv's de-duplication table must then apply each
    write once; with it off, a first attempt that commits late (a paused node resuming
    with the request in its socket buffer) is applied a second time, and the history
    shows a value reappearing after later writes, or a CAS recorded as failed whose
    value is visible.
    """

    name = "register-retry"
    attempts = 3
    attempt_timeout = 1.0  # s: well below the server's request timeout, so retries race

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.retry_http = Http(self.attempt_timeout)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.retry_http.close()

    def reader(self) -> Http:
        # Reads are not retried (they change nothing), but they share the short timeout
        # so a worker stuck on a paused node gets back to writing — the writes are what
        # a late first attempt can apply twice.
        return self.retry_http

    async def put(
        self, node: str, key: str, query: str, body: bytes, rng: random.Random
    ) -> tuple[Reply, str]:
        names = self.ctx.cluster.names
        rid = f"{rng.getrandbits(128):032x}"
        query = f"{query}{'&' if query else '?'}request_id={rid}"
        i = names.index(node)
        replies: list[Reply] = []
        for attempt in range(self.attempts):
            base = self.ctx.cluster.nodes[names[(i + attempt) % len(names)]].url
            replies.append(await self.retry_http.request("PUT", base, key, query, body))
            if write_outcome(replies[-1]) != "info" and replies[-1].kind != "refused":
                break
            await asyncio.sleep(0.05)
        return replies[-1], retried_write_outcome(replies)
