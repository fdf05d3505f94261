"""W2 set: add unique elements to a JSON list via read + CAS on mod_revision.

The add is one recorded op spanning both requests: a failed read means nothing was
written (fail), a 412 on the conditional put means the compare lost (fail), and a
timeout on the put is unknown (info). Final reads of every key from every node let
the set checker find lost, duplicate and unexpected elements.
"""

from __future__ import annotations

import json
import random
from typing import Any

from jepsen.checkers import convergence, setcheck
from jepsen.checkers.result import CheckResult
from jepsen.client import read_outcome, write_outcome
from jepsen.history import Op
from jepsen.workloads.base import Workload

ADDS_PER_KEY = 100


class SetWorkload(Workload):
    name = "set"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.gens = [0] * max(1, ctx.concurrency // 3)
        self.adds = [0] * len(self.gens)
        self.seq = 0

    def decode_read(self, body: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        if body is None:
            return [], {"mod_revision": 0}
        return json.loads(body["value"]), {"mod_revision": body.get("mod_revision")}

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        i = rng.randrange(len(self.gens))
        if self.adds[i] >= ADDS_PER_KEY:
            self.gens[i] += 1
            self.adds[i] = 0
        key = f"set/{i}/{self.gens[i]}"
        ctx.keys.add(key)
        if rng.random() < 0.15:
            return await self.recorded_read(process, node, key)
        self.adds[i] += 1
        self.seq += 1
        elem = f"{process}-{self.seq}"
        inv = ctx.rec.invoke(process, "add", key, elem, node)
        cur = await ctx.http.request("GET", base, key)
        if read_outcome(cur) != "ok":
            ctx.rec.complete(inv, "fail", error=f"read: {cur.error or cur.status}")
            return "fail"
        if cur.status == 200:
            elems, query = (
                json.loads(cur.body["value"]),
                f"?if_mod_revision={cur.body['mod_revision']}",
            )
        else:
            elems, query = [], "?if_absent"
        rep = await ctx.http.request("PUT", base, key, query, json.dumps([*elems, elem]).encode())
        out = write_outcome(rep)
        result = {"revision": rep.body.get("revision")} if out == "ok" else None
        ctx.rec.complete(
            inv,
            out,
            result=result,
            error=None if out == "ok" else (rep.error or f"HTTP {rep.status}"),
        )
        return out

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [setcheck.check(ops), convergence.check(statuses, local)]
