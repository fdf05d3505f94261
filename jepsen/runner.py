"""One test run: cluster up, workload + nemesis, final heal, final reads, checks.

Every step that can go wrong in the harness itself (cluster never elected a leader,
an exception) ends the run with exit code 3, never with a verdict.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jepsen import report, stats
from jepsen.checkers.result import INVALID, UNKNOWN, VALID, CheckResult, combine
from jepsen.client import Http
from jepsen.cluster import Cluster
from jepsen.etcd import EtcdCluster, EtcdHttp
from jepsen.history import Recorder, load_events, pair
from jepsen.nemesis import Fault, Nemesis, fault_dicts, nemesis_env, schedule
from jepsen.netns import NetnsCluster, missing_requirements, netem_available
from jepsen.workloads import WORKLOADS, Context

EXIT = {VALID: 0, INVALID: 1, UNKNOWN: 2}
HARNESS_ERROR = 3


@dataclass
class RunConfig:
    workload: str = "register"
    nemesis: str = "none"
    nodes: int = 3
    time: float = 20.0
    rate: float = 50.0
    concurrency: int = 6
    seed: int = 0
    store: Path = Path("store")
    op_timeout: float = 3.0
    # An explicit fault plan replaces the seeded schedule: tests that need a fault at a
    # known time (a positive control) must not depend on what a seed happens to draw.
    faults: list[Fault] | None = None
    # raftkv bugs to plant (RAFTKV_MUTATIONS, see README "Test mode"): a run with a
    # mutation that its workload's checker should catch must come out invalid.
    mutations: str = ""
    db: str = "raftkv"  # or "etcd": the same workloads against real etcd (jepsen/etcd.py)
    # Network faults through per-link TCP proxies, or (root) a network namespace per
    # node with iptables/tc (jepsen/netns.py).
    net: str = "proxy"


def netns_preflight(db: str, kinds: list[str]) -> None:
    """Refuse a netns run that cannot work, before any process starts."""
    if db != "raftkv":
        raise ValueError("--net netns runs raftkv only (etcd needs the sniffing proxy)")
    if why := missing_requirements():
        raise RuntimeError(why)
    if any(k in ("link", "link:delay") for k in kinds) and not netem_available():
        raise RuntimeError(
            "link delay needs the sch_netem qdisc, missing on this kernel; "
            "use --net proxy or --nemesis link:drop"
        )


def run(cfg: RunConfig) -> tuple[int, dict[str, Any]]:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    db = "" if cfg.db == "raftkv" else f"{cfg.db}-"
    mut = f"mut-{cfg.mutations.replace(',', '+')}-" if cfg.mutations else ""
    out = (
        cfg.store
        / f"{db}{mut}{cfg.workload}-{cfg.nemesis.replace(',', '+')}-{stamp}-seed{cfg.seed}"
    )
    out.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(_run(cfg, out))
    except Exception as e:  # noqa: BLE001 - any harness failure is exit 3, with the trace
        (out / "harness-error.txt").write_text(traceback.format_exc())
        print(f"HARNESS ERROR: {type(e).__name__}: {e}  ({out}/harness-error.txt)")
        return HARNESS_ERROR, {"dir": str(out), "verdict": "harness-error", "error": str(e)}


async def _boot(
    kind: type[Cluster], out: Path, cfg: RunConfig
) -> tuple[Cluster, dict[str, Any] | None]:
    """Start a fresh cluster; if it never becomes healthy, start over once on fresh
    ports. Ports are picked by binding port 0 and releasing it, so on a busy host
    another process (any client's ephemeral source port) can take one before the
    node binds it; nothing has been recorded yet, so a second boot hides nothing.
    The first attempt's logs are kept under nodes-boot1/."""
    for attempt in (1, 2):
        cluster = kind(out, cfg.nodes, cfg.seed)
        if cfg.db == "raftkv":
            cluster.extra_env = nemesis_env(cfg.nemesis)  # test mode for clock/failpoint
        if cfg.mutations:
            if cfg.db != "raftkv":
                raise ValueError("--mutations plants raftkv bugs; it has no meaning for etcd")
            cluster.extra_env = {
                **cluster.extra_env,
                "RAFTKV_TEST_MODE": "1",
                "RAFTKV_MUTATIONS": cfg.mutations,
            }
        try:
            await cluster.setup()
            up = await cluster.wait_healthy(30)
        except BaseException:
            await cluster.close()
            raise
        if up is not None or attempt == 2:
            return cluster, up
        print("cluster not healthy 30 s after start; restarting it on fresh ports")
        await cluster.close()
        shutil.rmtree(out / "data", ignore_errors=True)
        shutil.rmtree(out / "nodes-boot1", ignore_errors=True)
        (out / "nodes").rename(out / "nodes-boot1")
    raise AssertionError("unreachable")


async def _run(cfg: RunConfig, out: Path) -> tuple[int, dict[str, Any]]:
    kinds = [k for k in cfg.nemesis.split(",") if k]
    faults = cfg.faults if cfg.faults is not None else schedule(kinds, cfg.time, cfg.seed)
    print(
        f"raftkv-jepsen seed={cfg.seed} nodes={cfg.nodes} workload={cfg.workload} "
        f"nemesis={cfg.nemesis} time={cfg.time}s rate={cfg.rate} conc={cfg.concurrency} "
        f"db={cfg.db}{' mutations=' + cfg.mutations if cfg.mutations else ''} "
        f"net={cfg.net}  -> {out}"
    )
    if cfg.net == "netns":
        netns_preflight(cfg.db, kinds)
    kind = EtcdCluster if cfg.db == "etcd" else NetnsCluster if cfg.net == "netns" else Cluster
    http: Http = EtcdHttp(cfg.op_timeout) if cfg.db == "etcd" else Http(cfg.op_timeout)
    cluster, up = await _boot(kind, out, cfg)
    rec = Recorder(out / "history.jsonl")
    nem = Nemesis(cluster, out / "nemesis.jsonl", rec.now)
    try:
        if up is None:
            raise RuntimeError("cluster did not elect a leader within 30 s, twice")
        leader = next(iter(up.values()))["leader_name"]
        rec.t0 = time.monotonic()
        print(f"[{rec.now():6.1f}s] cluster up: leader={leader}; {len(faults)} faults scheduled")
        ctx = Context(
            cluster, http, rec, random.Random(cfg.seed), cfg.concurrency, cfg.rate, cfg.time
        )
        wl = WORKLOADS[cfg.workload](ctx)
        nem_task = asyncio.ensure_future(nem.run(faults))
        await wl.run()
        await nem_task
        nem.final_heal()
        healthy = await cluster.wait_healthy(60)
        heal_t = rec.now()
        print(f"[{heal_t:6.1f}s] final heal: {'healthy' if healthy else 'NOT healthy after 60 s'}")
        local = await wl.final_reads()
        statuses = {n: await cluster.status(n) for n in cluster.names}
    finally:
        rec.close()
        nem.close()
        await http.close()
        await cluster.close()
        shutil.rmtree(out / "data", ignore_errors=True)  # node logs stay; LMDB files go

    ops = pair(load_events(out / "history.jsonl"))
    results: list[CheckResult] = []
    if healthy is None:
        results.append(
            CheckResult("recovery", INVALID, "cluster not healthy 60 s after final heal")
        )
    else:
        results.append(CheckResult("recovery", VALID, f"healthy at {heal_t:.1f}s"))
    results += wl.check(ops, statuses, local)
    verdict = combine(results)
    counts = {t: sum(1 for o in ops if o.type == t) for t in ("ok", "fail", "info")}
    print(
        f"history: {len(ops)} ops  ok {counts['ok']} | fail {counts['fail']} | "
        f"info {counts['info']}  keys {len(ctx.keys)}"
    )
    run_stats = stats.summarize(ops, nem.windows)
    print(stats.line(run_stats))
    print("checkers:")
    for r in results:
        print(r.line())
    witness = report.witness(results, nem.windows)
    if witness:
        print(report.format_witness(witness))
    summary = {
        "config": {
            **cfg.__dict__,
            "store": str(cfg.store),
            "faults": None if cfg.faults is None else fault_dicts(cfg.faults),
        },
        "dir": str(out),
        "faults": fault_dicts(faults),
        "windows": nem.windows,
        "ops": len(ops),
        "counts": counts,
        "stats": run_stats,
        "checkers": [r.__dict__ for r in results],
        "verdict": verdict,
        "witness": witness,
    }
    (out / "results.json").write_text(json.dumps(summary, indent=1, default=str))
    report.render(out, ops, nem.windows, summary)
    print(f"RESULT: {verdict.upper()}  exit={EXIT[verdict]}  {out}/")
    return EXIT[verdict], summary
