"""`python -m raftkv.bench_trace` (`make bench-trace`): where one put's time goes.

Starts a 3-member cluster with RAFTKV_TRACE=1 (node/trace.py), sends N puts from one
client, one at a time, first to the leader and then to a follower, fetches every
member's marks from /debug/trace and prints the median and p99 of each phase of the
write path. Members and the client share one machine, so their CLOCK_MONOTONIC
readings are comparable and the leader's marks can be joined to a follower's request.

Phases, in order (each one ends where the next begins; they add up to the total):

    receive      client sent the request → the member proposed it (HTTP, parse, service)
    to-leader    (follower only) proposed → the leader appended it (MsgProp hop)
    queue        proposed → the leader's Ready loop picked it up for a Persist
    leader-fsync the leader's Persist (its log commit)
    quorum       leader persisted → a follower's ack made it committed
    learn        (follower only) leader committed → the follower learned the commit
    to-apply     committed → the Apply effect started (the Ready loop's turn)
    apply        the Apply effect (state machine commit)
    resolve      applied → the proposer's coroutine resumed
    answer       resumed → the client read the whole response (encode, write, read)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from raftkv.bench import Cluster, Target, _read_response, percentile

LEADER_PHASES = (
    ("receive", "sent", "proposed"),
    ("queue", "proposed", "L.appended"),
    ("leader-fsync", "L.appended", "L.persisted"),
    ("quorum", "L.persisted", "L.committed"),
    ("to-apply", "L.committed", "apply_start"),
    ("apply", "apply_start", "applied"),
    ("resolve", "applied", "resolved"),
    ("answer", "resolved", "received"),
)
FOLLOWER_PHASES = (
    ("receive", "sent", "proposed"),
    ("to-leader", "proposed", "L.appended"),
    ("leader-fsync", "L.appended", "L.persisted"),
    ("quorum", "L.persisted", "L.committed"),
    ("learn", "L.committed", "committed"),
    ("to-apply", "committed", "apply_start"),
    ("apply", "apply_start", "applied"),
    ("resolve", "applied", "resolved"),
    ("answer", "resolved", "received"),
)


async def sequential_puts(t: Target, n: int) -> list[tuple[float, float]]:
    """(sent, received) monotonic times of n puts sent one after another."""
    reader, writer = await asyncio.open_connection(t.host, t.port)
    spans = []
    try:
        for i in range(n):
            req = t.put(i)
            sent = time.monotonic()
            writer.write(req)
            status = await _read_response(reader)
            if status == 200:
                spans.append((sent, time.monotonic()))
    finally:
        writer.close()
    return spans


def fetch_trace(port: int, clear: bool = False) -> dict[str, Any]:
    q = "?clear" if clear else ""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/debug/trace{q}", timeout=10) as r:
        return json.loads(r.read())


def join(
    spans: list[tuple[float, float]], member: dict[str, Any], leader: dict[str, Any]
) -> list[dict[str, float]]:
    """One row of marks per client request: the member's request record (matched by
    time window), its entry's marks on the member, and the leader's (prefixed L.)."""
    recs = sorted(
        (r for r in member["requests"] if "proposed" in r and "index" in r),
        key=lambda r: r["proposed"],
    )
    rows, j = [], 0
    for sent, received in spans:
        while j < len(recs) and recs[j]["proposed"] < sent:
            j += 1
        if j == len(recs) or recs[j]["proposed"] > received:
            continue
        rec = recs[j]
        row = {"sent": sent, "received": received, **rec}
        row.update(member["entries"].get(str(rec["index"]), {}))
        for k, v in leader["entries"].get(str(rec["index"]), {}).items():
            row[f"L.{k}"] = v
        rows.append(row)
    return rows


def breakdown(rows: list[dict[str, float]], phases: tuple[tuple[str, str, str], ...]) -> str:
    lines = [f"{'phase':<14}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"]
    full = [r for r in rows if all(a in r and b in r for _, a, b in phases)]
    for name, a, b in (*phases, ("total", "sent", "received")):
        d = sorted((r[b] - r[a]) * 1e3 for r in full)
        if not d:
            continue
        mean = sum(d) / len(d)
        lines.append(f"{name:<14}{percentile(d, 0.5):>9.3f}{percentile(d, 0.99):>9.3f}{mean:>9.3f}")
    lines.append(f"({len(full)} of {len(rows)} requests had every mark)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m raftkv.bench_trace", description=__doc__)
    p.add_argument("--puts", type=int, default=1000)
    args = p.parse_args(argv)
    os.environ["RAFTKV_TRACE"] = "1"
    os.environ["RAFTKV_TEST_MODE"] = "1"  # /debug/trace is a test-mode route
    with tempfile.TemporaryDirectory(prefix="raftkv-trace-") as tmp:
        cluster = Cluster("raftkv", Path(tmp))
        try:
            targets = cluster.start()
            li = cluster.leader_index()
            fi = (li + 1) % len(targets)
            asyncio.run(sequential_puts(targets[li], 200))  # warm up
            for label, idx, phases in (
                ("leader", li, LEADER_PHASES),
                ("follower", fi, FOLLOWER_PHASES),
            ):
                for port in cluster.clients:
                    fetch_trace(port, clear=True)
                spans = asyncio.run(sequential_puts(targets[idx], args.puts))
                member = fetch_trace(cluster.clients[idx])
                leader = fetch_trace(cluster.clients[li])
                print(f"\n{args.puts} puts, 1 client, sent to the {label} (3 members, /v1)")
                print(breakdown(join(spans, member, leader), phases))
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
