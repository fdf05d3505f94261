"""W3 list-append: append unique elements to a JSON list per key, via CAS on mod_revision.

An append is one recorded op spanning two requests: read the key's list and its
mod_revision, then write the list plus the new element with ``if_mod_revision``
(``if_absent`` for a missing key). Nothing inside an op is retried — a lost compare
is a definite ``fail``, a failed read means nothing was written (``fail``), and a
timeout or 5xx on the write is ``info``. The list an ``ok`` append wrote (and the one
an ``info`` append tried to write) goes into its result, so the checker sees the
key's whole version order in every read and every acknowledged append.

A few key slots are shared by all workers, and a slot moves to a fresh key after
``APPENDS_PER_KEY`` appends, so lists (whole values rewritten per append) stay small
and every key's history stays readable in a witness.
"""

from __future__ import annotations

import json
import random
from typing import Any

from jepsen.checkers import convergence, listappend
from jepsen.checkers.result import CheckResult
from jepsen.client import read_outcome, write_outcome
from jepsen.history import Op
from jepsen.workloads.base import Workload

APPENDS_PER_KEY = 100
READ_SHARE = 0.25


class ListAppendWorkload(Workload):
    name = "list-append"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.gens = [0] * max(1, ctx.concurrency // 3)
        self.appends = [0] * len(self.gens)
        self.seq = 0

    def decode_read(self, body: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        if body is None:
            return [], {"mod_revision": 0}
        return json.loads(body["value"]), {"mod_revision": body.get("mod_revision")}

    def _key(self, rng: random.Random) -> tuple[int, str]:
        i = rng.randrange(len(self.gens))
        if self.appends[i] >= APPENDS_PER_KEY:
            self.gens[i] += 1
            self.appends[i] = 0
        key = f"la/{i}/{self.gens[i]}"
        self.ctx.keys.add(key)
        return i, key

    async def one_op(self, process: int, node: str, rng: random.Random) -> str:
        ctx = self.ctx
        base = ctx.cluster.nodes[node].url
        i, key = self._key(rng)
        if rng.random() < READ_SHARE:
            return await self.recorded_read(process, node, key)
        self.appends[i] += 1
        self.seq += 1
        elem = f"{process}-{self.seq}"
        inv = ctx.rec.invoke(process, "append", key, elem, node)
        cur = await ctx.http.request("GET", base, key)
        if read_outcome(cur) != "ok":
            # Nothing was written yet, whatever happened to the read.
            ctx.rec.complete(inv, "fail", error=f"read: {cur.error or cur.status}")
            return "fail"
        if cur.status == 200:
            elems = json.loads(cur.body["value"])
            query = f"?if_mod_revision={cur.body['mod_revision']}"
        else:
            elems, query = [], "?if_absent"
        new = [*elems, elem]
        rep = await ctx.http.request("PUT", base, key, query, json.dumps(new).encode())
        out = write_outcome(rep)
        if out == "ok":
            ctx.rec.complete(inv, "ok", result={"list": new, "revision": rep.body.get("revision")})
        elif out == "info":
            ctx.rec.complete(inv, "info", result={"list": new}, error=rep.error or "HTTP 5xx")
        else:
            err = "412 compare failed" if rep.status == 412 else (rep.error or f"HTTP {rep.status}")
            ctx.rec.complete(inv, "fail", error=err)
        return out

    def check(
        self, ops: list[Op], statuses: dict[str, Any], local: dict[str, Any]
    ) -> list[CheckResult]:
        return [listappend.check(ops), convergence.check(statuses, local)]
