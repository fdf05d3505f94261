"""Seeded fault schedules and their execution against a Cluster.

The schedule (when, which fault, which shape, how long) is drawn from the seed before
the run, so a seed replays the same plan; targets that depend on the cluster's state
(the current leader) are resolved when the fault fires and recorded in nemesis.jsonl.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jepsen.cluster import Cluster

SHAPES: dict[str, list[str]] = {
    "kill": ["one", "minority", "leader"],
    "pause": ["one", "minority", "leader"],
    "partition": [
        "isolate-one",
        "isolate-leader",
        "split",
        "one-way-leader",
        "bridge",
        "one-way-pair",
    ],
    # Degraded links rather than cut ones, on every link to and from one node.
    "link": ["delay", "drop"],
}
DELAY = 0.15  # s per chunk: several heartbeats late, below the election timeout
DROP = 0.05  # per-chunk chance the connection dies (loss forces reconnects)
KINDS = ("none", *SHAPES)


def valid_kind(k: str) -> bool:
    """``kind`` or ``kind:shape`` (one shape only, e.g. ``partition:bridge``)."""
    kind, _, shape = k.partition(":")
    return kind in KINDS and (not shape or shape in SHAPES.get(kind, []))


@dataclass
class Fault:
    start: float
    duration: float
    kind: str
    shape: str
    pick: int  # seeded choice among candidate targets


def schedule(kinds: list[str], total: float, seed: int) -> list[Fault]:
    """Faults with gaps of 2–4 s between them, each held 3–7 s (pauses and partitions
    outlast the 1–2 s election timeout), all healed 3 s before the workload ends."""
    kinds = [k for k in kinds if k != "none"]
    rng = random.Random(seed * 7919 + 1)
    out: list[Fault] = []
    t = 3.0
    while kinds:
        start = t + rng.uniform(2, 4)
        dur = rng.uniform(3, 7)
        if start + dur > total - 3:
            break
        kind, _, only = rng.choice(kinds).partition(":")
        shape = only or rng.choice(SHAPES[kind])
        out.append(Fault(start, dur, kind, shape, rng.randrange(1 << 30)))
        t = start + dur
    return out


class Nemesis:
    def __init__(self, cluster: Cluster, log_path: Path, clock: Any) -> None:
        self.cluster = cluster
        self.clock = clock  # callable giving seconds since run start
        self.fh = open(log_path, "w")  # noqa: SIM115
        self.windows: list[dict[str, Any]] = []

    def log(self, type_: str, fault: str, **detail: Any) -> dict[str, Any]:
        rec = {"time": round(self.clock(), 4), "type": type_, "fault": fault, **detail}
        self.fh.write(json.dumps(rec) + "\n")
        self.fh.flush()
        return rec

    async def _targets(self, f: Fault) -> list[str]:
        names = self.cluster.names
        rng = random.Random(f.pick)
        if "leader" in f.shape:
            leader = await self.cluster.leader()
            return [leader] if leader else [rng.choice(names)]
        if f.shape in ("minority", "split"):
            return rng.sample(names, (len(names) - 1) // 2)
        if f.shape == "bridge":
            return rng.sample(names, len(names))  # the bridge first, then the two sides
        if f.shape == "one-way-pair":
            return rng.sample(names, 2)  # the first's messages to the second are lost
        return [rng.choice(names)]

    async def run(self, faults: list[Fault]) -> None:
        for f in faults:
            delay = f.start - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            targets = await self._targets(f)
            start = self.log("start", f.kind, shape=f.shape, targets=targets)
            self._apply(f, targets)
            await asyncio.sleep(f.duration)
            self._undo(f, targets)
            stop = self.log("stop", f.kind, shape=f.shape, targets=targets)
            self.windows.append(
                {
                    "kind": f.kind,
                    "shape": f.shape,
                    "targets": targets,
                    "start": start["time"],
                    "stop": stop["time"],
                }
            )

    def _apply(self, f: Fault, targets: list[str]) -> None:
        c = self.cluster
        others = [n for n in c.names if n not in targets]
        if f.kind == "kill":
            for n in targets:
                c.kill(n)
        elif f.kind == "pause":
            for n in targets:
                c.pause(n)
        elif f.shape == "bridge":
            # Two sides that only the bridge node hears: each side may elect, both
            # can reach a majority only through the bridge (Jepsen's bridge).
            rest = targets[1:]
            half = len(rest) // 2
            c.net.cut_between(rest[:half], rest[half:])
        elif f.shape == "one-way-pair":
            c.net.set(targets[0], targets[1], cut=True)
        elif f.kind == "partition":
            c.net.cut_between(targets, others, one_way=f.shape.startswith("one-way"))
        elif f.kind == "link":
            kw = {"delay": DELAY} if f.shape == "delay" else {"drop": DROP}
            for src, dst in list(c.net.links):
                if targets[0] in (src, dst):
                    c.net.set(src, dst, **kw)

    def _undo(self, f: Fault, targets: list[str]) -> None:
        c = self.cluster
        if f.kind == "kill":
            for n in targets:
                c.start(n)
        elif f.kind == "pause":
            for n in targets:
                c.resume(n)
        elif f.kind in ("partition", "link"):
            c.net.heal()

    def final_heal(self) -> None:
        """Heal everything regardless of what the schedule left behind."""
        c = self.cluster
        c.net.heal()
        for n in c.names:
            if c.nodes[n].paused:
                c.resume(n)
            if not c.alive(n):
                c.start(n)
        self.log("final-heal", "all")

    def close(self) -> None:
        self.fh.close()


def fault_dicts(faults: list[Fault]) -> list[dict[str, Any]]:
    return [asdict(f) for f in faults]
