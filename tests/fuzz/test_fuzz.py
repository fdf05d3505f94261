"""Fuzz both API faces of a live 3-member cluster; fail with every finding at once.

Each test first sends a deterministic sweep (every probe of mutate.PROBES in every
field of a canonical request, so no field is left to chance), then Hypothesis's
cases. Budgets (RAFTKV_FUZZ_EXAMPLES raises them; RAFTKV_FUZZ_SEED swaps the fixed
derandomized run for a seeded random one) keep the whole package under 90 s on a
2-core machine, cluster start included.
"""

from __future__ import annotations

import pytest

from tests.fuzz import v1, v3
from tests.fuzz.conftest import LiveCluster, note
from tests.fuzz.runner import Fuzzer, examples, time_budget

pytestmark = pytest.mark.fuzz


def finish(f: Fuzzer, extra: str = "") -> None:
    """Print the counts, then fail with every finding and its reproducer."""
    note(f.summary() + extra)
    if f.findings:
        pytest.fail(f.report(), pytrace=False)


def _v3_pools(live: LiveCluster) -> v3.V3Pools:
    return v3.V3Pools(live.pools.lease_ids, sorted(live.net.reserved_ports))


def test_fuzz_v1_unary(live: LiveCluster) -> None:
    f = Fuzzer("v1", live.target())
    missed = v1.missing_routes(v1.operations(live.doc), v1.KNOWN_ROUTES)
    corpus = v1.sweep(live.doc, live.pools, live.net, 3, known=v1.KNOWN_ROUTES)
    strategy = v1.cases(
        live.doc, live.pools, live.net, 3, known=v1.KNOWN_ROUTES, unrouted=v1.UNROUTED
    )
    f.run(strategy, examples(1500), time_budget(20), corpus)
    finish(
        f,
        "\n  routes the OpenAPI document does not describe (fuzzed from the router list): "
        + ", ".join(o.label for o in missed),
    )


def test_fuzz_v1_watch(live: LiveCluster) -> None:
    f = Fuzzer("v1-watch", live.target())
    corpus = v1.sweep(live.doc, live.pools, live.net, 3, streams=True)
    strategy = v1.cases(live.doc, live.pools, live.net, 3, streams=True)
    f.run(strategy, examples(300), time_budget(8), corpus)
    finish(f)


def test_fuzz_v3_unary(live: LiveCluster) -> None:
    f = Fuzzer("v3", live.target())
    pools = _v3_pools(live)
    corpus = v3.sweep(pools, live.net, 3, ("unary", "blocking"))
    f.run(v3.cases(pools, live.net, 3), examples(1200), time_budget(14), corpus)
    finish(f)


def test_fuzz_v3_streams(live: LiveCluster) -> None:
    f = Fuzzer("v3-streams", live.target())
    pools = _v3_pools(live)
    corpus = v3.sweep(pools, live.net, 3, ("stream",))
    strategy = v3.cases(pools, live.net, 3, kinds=("stream",), other=False)
    f.run(strategy, examples(60), time_budget(8), corpus)
    finish(f)


def test_cluster_survived_the_fuzzing(live: LiveCluster) -> None:
    """The last word: every member the same process, a leader, a write reads back."""
    problem = live.health()
    assert problem is None, problem
