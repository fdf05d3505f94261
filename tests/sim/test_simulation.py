"""The simulator: a clean campaign, exact replay, and proof that it catches bugs."""

from __future__ import annotations

import os
from multiprocessing import Pool

import pytest

from raftkv.sim import SimConfig, Simulation, Violation, run_seed
from raftkv.sim.__main__ import replay_command

CAMPAIGN_SEEDS = int(os.environ.get("RAFTKV_SIM_SEEDS", "1100"))


def _outcome(args: tuple[int, frozenset[str]]) -> tuple[int, str, str] | None:
    seed, bugs = args
    try:
        run_seed(seed, bugs=bugs)
    except Violation as v:
        return (seed, v.kind, str(v))
    return None


def _first_violations(
    bugs: frozenset[str], budget: int, want: int = 1
) -> list[tuple[int, str, str]]:
    found: list[tuple[int, str, str]] = []
    with Pool(2) as pool:
        for out in pool.imap(_outcome, [(s, bugs) for s in range(budget)], chunksize=4):
            if out is not None:
                found.append(out)
                if len(found) >= want:
                    pool.terminate()
                    break
    return found


def test_campaign_of_mixed_fault_seeds_finds_no_violation() -> None:
    """>= 1,000 seeds, 3 and 5 nodes (alternating), every fault kind enabled."""
    with Pool(2) as pool:
        outcomes = pool.map(_outcome, [(s, frozenset()) for s in range(CAMPAIGN_SEEDS)], 8)
    violations = [o for o in outcomes if o is not None]
    replays = [
        f"{msg}\n  replay: {replay_command(seed, None, frozenset())}" for seed, _, msg in violations
    ]
    assert not violations, "\n".join(replays)


def test_a_seed_replays_exactly() -> None:
    a = Simulation(SimConfig(seed=4242, nodes=5))
    b = Simulation(SimConfig(seed=4242, nodes=5))
    ra, rb = a.run(), b.run()
    assert ra == rb
    assert a.trace == b.trace
    assert [op.describe() for op in a.ops] == [op.describe() for op in b.ops]
    assert ra.faults and ra.committed > 0 and ra.ops


def test_runs_exercise_every_fault_kind() -> None:
    """A simulator that never injects a fault proves nothing: count them."""
    from collections import Counter

    kinds: Counter[str] = Counter()
    installs = 0
    for seed in range(40):
        r = run_seed(seed)
        kinds.update(k.split(":")[0] for k in r.faults)
        installs += r.snapshots_installed
    for kind in (
        "crash",
        "crash_after_persist",
        "crash_new_leader",
        "restart",
        "partition",
        "loss",
        "duplicate",
        "delay/reorder",
        "member",
        "pause",
        "clock drift",
    ):
        assert kinds[kind] > 0, kind
    assert installs > 0


# Each planted bug, the seed budget in which the simulator must catch it, and the
# checkers that may legitimately report it.
PLANTED = [
    ("vote_no_log_check", 100, {"leader completeness", "state machine safety", "linearizability"}),
    ("double_vote", 100, {"election safety", "durability"}),
    ("read_no_quorum", 100, {"linearizability"}),
    (
        "truncate_on_append",
        200,
        {
            "durability",
            "liveness",
            "core assertion",
            "state machine safety",
            "linearizability",
            "leader completeness",  # a truncated committed entry, then that node leads
        },
    ),
    # A deposed leader's appends overwrite entries a later term committed (seed 108).
    ("accept_stale_term", 300, {"state machine safety", "core assertion", "leader completeness"}),
]
# commit_old_term (Figure 8) needs a precise chain of elections and deaths that random
# faults reach only rarely; the scripted paper test
# tests/raft/test_core.py::test_leader_commits_old_term_entries_only_via_current_term
# catches it deterministically.


@pytest.mark.parametrize(("bug", "budget", "checkers"), PLANTED, ids=[p[0] for p in PLANTED])
def test_simulator_catches_planted_bug(bug: str, budget: int, checkers: set[str]) -> None:
    found = _first_violations(frozenset({bug}), budget)
    assert found, f"planted bug {bug!r} survived {budget} seeds: the checks are too weak"
    seed, kind, msg = found[0]
    assert kind in checkers, msg
    # The failing seed replays to the same violation.
    with pytest.raises(Violation) as again:
        run_seed(seed, bugs=frozenset({bug}))
    assert str(again.value) == msg


def test_simulator_runs_the_production_driver_and_catches_its_ordering_bug() -> None:
    """The seeds run node/driver.py, the node's own Ready handling: a planted ordering
    bug in it (acks and votes sent before their state is persisted) is caught, and the
    failing seed replays to the same violation."""
    bug = frozenset({"send_before_persist"})
    found: tuple[int, str] | None = None
    for seed in range(50):
        try:
            run_seed(seed, driver_bugs=bug)
        except Violation as v:
            found = (seed, str(v))
            assert v.kind == "durability", v
            break
    assert found is not None, "the planted driver bug survived 50 seeds"
    with pytest.raises(Violation) as again:
        run_seed(found[0], driver_bugs=bug)
    assert str(again.value) == found[1]
