"""Final reads stop asking a node whose linearizable reads go unanswered (a cluster
with no leader would otherwise cost keys x nodes x the client timeout), and still take
every node's local reads for the convergence check."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

from jepsen.client import Reply
from jepsen.history import Recorder
from jepsen.workloads.base import FINAL_GIVE_UP, Context, Workload


class FakeHttp:
    """n1 answers everything; n2 answers only local (serializable) reads."""

    def __init__(self) -> None:
        self.linearizable: dict[str, int] = {"n1": 0, "n2": 0}

    async def request(self, method: str, base: str, key: str, query: str = "") -> Reply:
        node = base.rsplit("/", 1)[-1]
        if query:
            return Reply("http", 200, {"value": f"v-{key}", "mod_revision": 7})
        self.linearizable[node] += 1
        if node == "n2":
            return Reply("timeout", error="no answer in 3 s")
        return Reply("http", 200, {"value": f"v-{key}", "mod_revision": 7, "revision": 9})


async def test_final_reads_give_up_on_a_node_that_never_answers() -> None:
    http = FakeHttp()
    cluster = SimpleNamespace(
        names=["n1", "n2"],
        nodes={n: SimpleNamespace(url=f"http://x/{n}") for n in ("n1", "n2")},
    )
    keys = {f"k{i}" for i in range(10)}
    ctx = Context(cluster, http, Recorder(None), random.Random(1), 1, 1.0, 0.0, keys)  # type: ignore[arg-type]
    local = await Workload(ctx).final_reads()
    assert http.linearizable == {"n1": 10, "n2": FINAL_GIVE_UP}
    assert local["n1"] == local["n2"] == {k: [f"v-{k}", 7] for k in keys}
    done: list[Any] = [e for e in ctx.rec.events if e.type != "invoke"]
    assert [e.type for e in done].count("ok") == 10
    assert [e.type for e in done].count("info") == FINAL_GIVE_UP
