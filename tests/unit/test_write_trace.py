"""The write-path trace (node/trace.py) and the breakdown tool's joining of marks."""

from __future__ import annotations

from raftkv.bench_trace import FOLLOWER_PHASES, LEADER_PHASES, breakdown, join
from raftkv.node.trace import WriteTrace


def test_records_join_request_and_entry_marks_and_stay_bounded() -> None:
    tr = WriteTrace(capacity=3)
    for n in range(5):
        rid = b"r%d" % n
        tr.request(rid, "proposed")
        tr.entries([10 + n], "appended")
        tr.entries([10 + n], "appended", at=-1.0)  # the first mark of a point wins
        tr.link(rid, 10 + n)
        tr.request(rid, "resolved")
    recs = tr.records()
    assert [r["rid"] for r in recs] == [b"r2".hex(), b"r3".hex(), b"r4".hex()]
    assert all(r["proposed"] <= r["appended"] <= r["resolved"] for r in recs)
    assert sorted(tr.entry_marks()) == [12, 13, 14]
    tr.clear()
    assert tr.records() == [] and tr.entry_marks() == {}


def _member(index: int, base: float, marks: dict[str, float]) -> dict:
    return {"index": index, **{k: base + v for k, v in marks.items()}}


def test_breakdown_phases_chain_and_add_up_to_the_total() -> None:
    for phases in (LEADER_PHASES, FOLLOWER_PHASES):
        for (_, _, end), (_, start, _) in zip(phases, phases[1:], strict=False):
            assert end == start  # each phase begins where the previous one ends
        assert phases[0][1] == "sent" and phases[-1][2] == "received"
    # A follower-sent put: the follower's request record, the leader's entry marks.
    spans = [(100.0, 100.010), (200.0, 200.010)]
    requests, f_entries, l_entries = [], {}, {}
    for i, (sent, _) in enumerate(spans):
        idx = 7 + i
        requests.append(
            {"rid": "x", "index": idx, "proposed": sent + 0.001, "resolved": sent + 0.009}
        )
        f_entries[str(idx)] = {
            "committed": sent + 0.005,
            "apply_start": sent + 0.006,
            "applied": sent + 0.008,
        }
        l_entries[str(idx)] = {
            "appended": sent + 0.002,
            "persisted": sent + 0.003,
            "committed": sent + 0.004,
        }
    stray = {"rid": "y", "index": 99, "proposed": 150.0}  # outside every span: ignored
    member = {"requests": [stray, *requests], "entries": f_entries}
    leader = {"requests": [], "entries": l_entries}
    rows = join(spans, member, leader)
    assert len(rows) == 2
    text = breakdown(rows, FOLLOWER_PHASES)
    lines = {ln.split()[0]: float(ln.split()[1]) for ln in text.splitlines()[1:-1]}
    assert abs(lines["total"] - 10.0) < 1e-6
    assert abs(sum(v for k, v in lines.items() if k != "total") - lines["total"]) < 1e-6
    assert "(2 of 2 requests had every mark)" in text
