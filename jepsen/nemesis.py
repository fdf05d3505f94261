"""Seeded fault schedules and their execution against a Cluster.

The schedule (when, which fault, which shape, how long) is drawn from the seed before
the run, so a seed replays the same plan; targets that depend on the cluster's state
(the current leader) are resolved when the fault fires and recorded in nemesis.jsonl.
Faults run one at a time, so at most one membership change is ever in flight.

Kinds beyond kill/pause/partition/link:

* ``kill:majority`` and ``kill:all`` — kill -9 a majority or every node, restart them
  all at the fault's end. Acknowledged writes must survive (each was fsynced on a
  majority before its ack). There is no ``power`` shape: with raftkv's normal fsync
  every acknowledged entry is on disk before the ack, so a kill -9 already loses
  exactly what a power cut would; under RAFTKV_LAZY_FSYNC raftkv acknowledges without
  fsync by design, so restoring the last fsync copy would test a configuration that
  promises no durability (a tool for the ack-before-fsync mutation, not a fault a
  correct node must survive).
* ``clock:bump|drift|strobe`` — raftkv's test-mode clock (POST /debug/clock) on one
  *follower*: step its offset by ±0.5–5 s, run it at rate 0.5–2.0, or flip its offset
  every few hundred ms; reset to offset 0 / rate 1 at the fault's end and in
  ``final_heal``. Raft safety never reads a clock, so every KV workload must stay
  valid. Leases do: only the leader runs lease clocks, and its expiry deadlines assume
  its monotonic clock advances at the real rate (etcd makes the same assumption; the
  lease checker allows 0.25 s). A leader running 2x fast expires a 3 s lease after
  1.5 s, and resetting a skewed offset is itself a step of the leader's clock — both
  outside the documented assumption, not raftkv bugs. So the nemesis skews followers
  only: a follower's clock drives its election timeout and nothing else, and a
  follower that becomes leader gives every lease a fresh full TTL on its own clock.
  Caveat: a skewed follower that wins an election *during* the window (say in a mix
  with kill:leader) brings its skew to the leases; lease x (clock + leader faults) may
  then report a premature expiry that is the assumption, not a bug.
* ``membership:remove-readd|replace`` — on a follower, with every member healthy:
  remove it through the leader (DELETE /v1/members/<id>) and stop it; at the fault's
  end either wipe its data dir and add it back under the same name and ports, or add
  a brand-new node (next free name, fresh ports); either joins with
  ``—initial-cluster-state existing`` and is promoted from learner to voter. A member
  is removed only from a cluster of at least 3 whose members all answer, so the rest
  stay a healthy majority. See jepsen/cluster.py for how far network faults reach a
  joined node.
* ``leader:transfer`` — POST /v1/leader/transfer on the leader, to a random follower:
  a new leader with every node up and every client still reading, so whatever the new
  leader gets wrong about state handed over (lease deadlines) is observed at once.
* ``stall-kill:<failpoint>`` — overlapping faults in one script, for bugs that need
  a majority caught inside the same window: stall every follower at the failpoint
  (``sleep``), let writes arrive for 1 s, kill -9 the followers and then the leader;
  at the window's end restart the followers first and the old leader once they have
  elected one of themselves (at most 10 s later). With fsync before every ack nothing
  acknowledged is lost (and with ``after_send_before_persist``, reached only under
  ack-before-fsync, an unmutated follower never stalls); a node that acks before
  persisting loses on a majority what it acknowledged — a power cut after an unsynced ack.
* ``lag-elect:kill-leader`` — cut one follower off for 2 s while writes commit
  without it, then in the same instant heal it and kill -9 the leader (restarted at the
  window's end): the election that follows has a lagging candidate, which a correct
  node never votes for (the up-to-date-log check, Raft §5.4.1). With the proxy
  backend the up-to-date nodes' pre-vote and vote requests are dropped from the kill
  to the window's end (at least 3 s), so the lagging node is the only candidate: a correct cluster
  elects no one until then, one that skips the check elects the lagging node.
  ``slow-isolated-leader`` instead slows the leader's clock to a quarter (test mode)
  and cuts it off for the window: the majority elects a new leader while the old
  one, its check-quorum timer crawling, believes it still leads for seconds — reads it
  serves without confirming leadership are stale; a correct leader cannot confirm
  them and serves none.
  ``stale-append`` and ``commit-unknown`` (proxy backend only) cut the lagging
  follower(s) off the same way while a frame trap (jepsen/frametrap.py) sits on the
  leader's link to each remaining follower; 2 s in, the trap fires on the next
  uncommitted append: ``stale-append`` delivers it and then the append before it
  again, ``commit-unknown`` delivers it alone; either way nothing more reaches that
  follower. 0.3 s later — the leader has counted the follower's ack, committed and
  answered its clients — the leader is killed and the lagging side healed; the trapped
  follower, the most up to date, is elected. A follower that truncates on the stale
  append has lost entries the cluster acknowledged. For ``commit-unknown`` the
  follower's acks are slowed (0.15 s) during the lag, so the leader keeps sending
  appends whose commit index is that old: at the trap the follower holds 0.15 s of
  acknowledged writes it does not know are committed, and a new leader that reads
  before its no-op commits answers without them; after the kill the lagging node's
  append responses are held 1 s (votes and heartbeat responses overtake them), so
  that commit takes a second while elections and read confirmations stay fast.
  ``stale-leader`` (3 nodes) holds, instead of delivering, everything the leader sends
  to either follower and cuts their acks to it, so it keeps appending writes no one
  else has. The followers elect a new leader; its append acks are held 0.3 s, so it
  keeps sending appends whose commit index predates its term while client writes
  arrive, and the first frame that would tell the other follower (the victim) that
  anything of the new term is committed is dropped, with all after it. Then the old
  leader's held appends — now of a stale term — are released to the victim, the new
  leader is killed and everything healed. A follower that obeys stale-term appends
  overwrites the new leader's acknowledged writes with the old leader's entries, and
  the old leader, now as up to date as the victim, can be elected: the writes are lost.
  ``stale-leader-restart`` is the same script with one step more: before the held
  appends are released, the victim is killed -9 and restarted (the held link reconnects
  to the new process). A node that persisted its term comes back in the new leader's
  term and refuses them; one that lost its term and vote on the restart comes back at
  an older term, obeys the stale appends, and the writes are lost as above.
  ``twin-candidates`` cuts the leader off and holds each of two followers' pre-vote
  grants to the other until both have granted one, then delivers both: the two
  become candidates in the same term and their vote requests cross. A node that
  grants a second vote in a term makes both leaders of that term; the old leader,
  healed 1 s later, acknowledges both, and each commits its own entries.
  ``figure8`` (3 nodes, proxy backend) is Raft's Figure 8: every link is framed by an
  ``EntryFilter`` tap. The leader A is cut off while its clients' writes (X) pile up
  uncommitted; between the other two, appends are dropped, so the one elected (W)
  keeps its first entry (Y, a later term) to itself. Then W is cut off and A comes
  back to the third node V alone: A, the longer log, is elected again, and its
  appends to V arrive with A's current-term entries (its no-op) cut out. V
  acknowledges X alone, which a correct leader does not count (§5.4.2: only an entry
  of its own term commits by counting replicas). 1.5 s later A is killed and W
  reconnected to V: W's last term is newer than V's, so V elects it and W overwrites
  X with Y. X was never committed, unless a leader counted V's ack — then X is
  overwritten on V after it was committed there (the planted ``figure8-commit``).
* ``failpoint:<name>`` (raftkv/testmode.py FAILPOINTS) — arm ``crash`` on one node at
  the fault's start; at its end disarm it, and restart the node if it crashed.

``clock`` and ``failpoint`` need raftkv's test mode: ``nemesis_env`` gives the
environment the cluster must start with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jepsen import hostile
from jepsen.cluster import Cluster
from jepsen.frametrap import (
    Chain,
    DropVoteRequests,
    EntryFilter,
    FrameTrap,
    HoldTrap,
    PreVoteGate,
    RevealTrap,
    SlowAppendAcks,
)
from raftkv.testmode import FAILPOINTS

SHAPES: dict[str, list[str]] = {
    "kill": ["one", "minority", "leader", "majority", "all"],
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
    "clock": ["bump", "drift", "strobe"],
    "membership": ["remove-readd", "replace"],
    # A leader change with no outage: the leader hands over to a random follower.
    "leader": ["transfer"],
    # Whole-cluster crash while the followers sit in a failpoint's window (test mode).
    "stall-kill": sorted(FAILPOINTS),
    # Overlap a lagging follower with a leader crash (the election the lagging node
    # must lose): see the module docstring.
    "lag-elect": [
        "kill-leader",
        "slow-isolated-leader",
        "stale-append",
        "commit-unknown",
        "stale-leader",
        "stale-leader-restart",
        "twin-candidates",
        "figure8",
    ],
    "failpoint": sorted(FAILPOINTS),
    # Clients sending the worst requests inside etcd's limits (jepsen/hostile.py).
    "hostile": hostile.SHAPES,
}
TEST_MODE_KINDS = ("clock", "failpoint", "stall-kill", "lag-elect")
DELAY = 0.15  # s per chunk: several heartbeats late, below the election timeout
STALE_ACK_HOLD = 0.3  # s a new leader's acks are held (lag-elect:stale-leader)
MUTED_ELECTION = 3.0  # s at least that lag-elect:kill-leader leaves `behind` the only candidate
ACK_HOLD = 1.0  # s a lagging follower's append acks are held (lag-elect:commit-unknown)
DROP = 0.05  # per-chunk chance the connection dies (loss forces reconnects)
KINDS = ("none", *SHAPES)


def _pass(frame: bytes) -> list[bytes | float | tuple[float, bytes]]:
    """A tap that forwards every frame as it is."""
    return [frame]


def valid_kind(k: str) -> bool:
    """``kind`` or ``kind:shape`` (one shape only, e.g. ``partition:bridge``)."""
    kind, _, shape = k.partition(":")
    return kind in KINDS and (not shape or shape in SHAPES.get(kind, []))


def nemesis_env(nemesis: str) -> dict[str, str]:
    """Node environment a nemesis spec needs (test mode for the /debug knobs)."""
    kinds = {k.partition(":")[0] for k in nemesis.split(",") if k}
    return {"RAFTKV_TEST_MODE": "1"} if kinds & set(TEST_MODE_KINDS) else {}


@dataclass
class Fault:
    start: float
    duration: float
    kind: str
    shape: str
    pick: int  # seeded choice among candidate targets


def schedule(kinds: list[str], total: float, seed: int) -> list[Fault]:
    """Faults with gaps of 2–4 s between them, each held 3–7 s (pauses and partitions
    outlast the 1–2 s election timeout), all healed 3 s before the workload ends.

    Shapes are dealt in rotation, not drawn: a kind's n-th fault in the run with seed
    s takes shape ``2 * (s - 1) + n`` (mod the shape count), so consecutive seeds
    continue where the previous one stopped and a few seeds of two faults each cover
    every shape. (Drawn at random, a 288-cell matrix never drew kill:leader,
    partition:split nor partition:one-way-pair.)"""
    kinds = [k for k in kinds if k != "none"]
    rng = random.Random(seed * 7919 + 1)
    dealt: dict[str, int] = {}
    out: list[Fault] = []
    t = 3.0
    while kinds:
        start = t + rng.uniform(2, 4)
        dur = rng.uniform(3, 7)
        if start + dur > total - 3:
            break
        kind, _, only = rng.choice(kinds).partition(":")
        n = dealt.get(kind, 0)
        dealt[kind] = n + 1
        shape = only or SHAPES[kind][(2 * (seed - 1) + n) % len(SHAPES[kind])]
        out.append(Fault(start, dur, kind, shape, rng.randrange(1 << 30)))
        t = start + dur
    return out


class Nemesis:
    def __init__(self, cluster: Cluster, log_path: Path, clock: Any) -> None:
        self.cluster = cluster
        self.clock = clock  # callable giving seconds since run start
        self.fh = open(log_path, "w")  # noqa: SIM115
        self.windows: list[dict[str, Any]] = []
        self._skewed: set[str] = set()  # nodes whose clock a fault may have left skewed
        self._armed: dict[str, str] = {}  # node -> failpoint armed and not yet disarmed
        self._new_names = 0
        self._slow_acks: dict[tuple[str, str], SlowAppendAcks] = {}
        self._mutes: dict[tuple[str, str], DropVoteRequests] = {}
        self._hostile = hostile.HostileClients(cluster, clock, log_path.parent / "nodes")

    def log(self, type_: str, fault: str, **detail: Any) -> dict[str, Any]:
        rec = {"time": round(self.clock(), 4), "type": type_, "fault": fault, **detail}
        self.fh.write(json.dumps(rec, default=str) + "\n")
        self.fh.flush()
        return rec

    async def _targets(self, f: Fault) -> list[str]:
        names = list(self.cluster.names)
        rng = random.Random(f.pick)
        if f.kind in ("stall-kill", "hostile"):
            return names
        if f.kind in ("clock", "membership"):
            # Followers only: see the module docstring (leases; a leader's removal).
            leader = await self.cluster.leader()
            followers = [n for n in names if n != leader] or names
            return [rng.choice(followers)]
        if "leader" in f.shape or f.kind == "leader":
            leader = await self.cluster.leader()
            return [leader] if leader else [rng.choice(names)]
        if f.shape in ("minority", "split"):
            return rng.sample(names, (len(names) - 1) // 2)
        if f.shape == "majority":
            return rng.sample(names, len(names) // 2 + 1)
        if f.shape in ("all", "bridge"):
            return rng.sample(names, len(names))  # bridge: the bridge, then the two sides
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
            detail: dict[str, Any] = {}
            try:
                detail.update(await self._apply_any(f, targets))
            except Exception as e:  # noqa: BLE001 - a fault that failed is logged, not fatal
                detail["error"] = f"apply: {type(e).__name__}: {e}"
                self.log("error", f.kind, shape=f.shape, targets=targets, error=detail["error"])
            strobe = (
                asyncio.ensure_future(self._strobe(targets[0], f.pick))
                if f.kind == "clock" and f.shape == "strobe" and "error" not in detail
                else None
            )
            await asyncio.sleep(f.duration)
            if strobe is not None:
                strobe.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    detail["flips"] = await strobe
            try:
                detail.update(await self._undo(f, targets, detail))
            except Exception as e:  # noqa: BLE001
                err = f"undo: {type(e).__name__}: {e}"
                detail["undo_error"] = err
                self.log("error", f.kind, shape=f.shape, targets=targets, error=err)
            stop = self.log("stop", f.kind, shape=f.shape, targets=targets, **detail)
            self.windows.append(
                {
                    "kind": f.kind,
                    "shape": f.shape,
                    "targets": targets,
                    "start": start["time"],
                    "stop": stop["time"],
                    "detail": detail,
                }
            )

    def _pids(self, names: list[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for n in names:
            p = self.cluster.nodes[n].proc
            out[n] = p.pid if p is not None and p.poll() is None else None
        return out

    async def _apply_any(self, f: Fault, targets: list[str]) -> dict[str, Any]:
        """Kinds that talk to the nodes over HTTP; the rest are local and synchronous."""
        c = self.cluster
        if f.kind == "clock":
            return await self._clock_apply(f, targets[0])
        if f.kind == "membership":
            return await self._membership_apply(targets[0])
        if f.kind == "leader":
            return await self._transfer(f)
        if f.kind == "stall-kill":
            return await self._stall_kill(f)
        if f.kind == "lag-elect":
            return await self._lag_elect(f)
        if f.kind == "hostile":
            return await self._hostile.start(f.shape, f.duration, f.pick, targets)
        if f.kind == "failpoint":
            code, data = await c.call(targets[0], "POST", "/debug/failpoints", {f.shape: "crash"})
            if code != 200:
                raise RuntimeError(f"arm {f.shape} on {targets[0]}: {code} {data}")
            self._armed[targets[0]] = f.shape
            return {"armed": data, "pids_before": self._pids(targets)}
        return self._apply(f, targets)

    def _apply(self, f: Fault, targets: list[str]) -> dict[str, Any]:
        c = self.cluster
        others = [n for n in c.names if n not in targets]
        if f.kind == "kill":
            pids = self._pids(targets)
            for n in targets:
                c.kill(n)
            return {"pids_before": pids}
        if f.kind == "pause":
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
        return {}

    async def _undo(self, f: Fault, targets: list[str], detail: dict[str, Any]) -> dict[str, Any]:
        c = self.cluster
        if f.kind == "kill":
            for n in targets:
                c.start(n)
            return {"pids_after": self._pids(targets)}
        if f.kind == "pause":
            for n in targets:
                c.resume(n)
        elif f.kind in ("partition", "link"):
            c.net.heal()
        elif f.kind == "clock":
            return {"reset": await self._set_clock(targets[0], 0.0, 1.0)}
        elif f.kind == "membership":
            if "error" in detail or "skipped" in detail:
                return {}  # nothing was removed: add nothing
            return await self._membership_undo(f, targets[0])
        elif f.kind == "stall-kill":
            return await self._stall_kill_undo(detail)
        elif f.kind == "hostile":
            return await self._hostile.stop()
        elif f.kind == "lag-elect":
            if "slowed" in detail:
                c.net.heal()
                return {"reset": await self._set_clock(detail["slowed"], 0.0, 1.0)}
            out = {}
            if "trapped" in detail:
                out["acks_held"] = {f"{a}->{b}": t.held for (a, b), t in self._slow_acks.items()}
                c.net.heal()  # commit-unknown's slowed append acks
            if "muted" in detail:
                out["vote_requests_dropped"] = sum(m.dropped for m in self._mutes.values())
                self._mutes = {}
            if "w" in detail or "muted" in detail:
                c.net.heal()  # figure8's pass-through taps, kill-leader's vote mutes
            if "leader" in detail:
                c.start(detail["leader"])
            return {**out, "pids_after": self._pids(c.names)}
        elif f.kind == "failpoint":
            n = targets[0]
            out: dict[str, Any] = {}
            proc = c.nodes[n].proc
            if c.alive(n):
                code, _ = await c.call(n, "POST", "/debug/failpoints", {f.shape: "off"})
                out["crashed"] = False
                out["disarmed"] = code == 200
            else:
                out["crashed"] = True
                out["exit_code"] = proc.returncode if proc is not None else None
                c.start(n)  # a fresh process starts with no failpoint armed
            self._armed.pop(n, None)
            out["pids_after"] = self._pids(targets)
            return out
        return {}

    # --- stall-kill ---

    async def _stall_kill(self, f: Fault) -> dict[str, Any]:
        c = self.cluster
        leader = await c.leader()
        if leader is None:
            return {"skipped": "no leader"}
        followers = [n for n in c.names if n != leader]
        for n in followers:
            code, data = await c.call(n, "POST", "/debug/failpoints", {f.shape: "sleep(30000)"})
            if code != 200:
                raise RuntimeError(f"stall {f.shape} on {n}: {code} {data}")
        await asyncio.sleep(1.0)  # writes arrive; acks may leave before the stall
        for n in followers:
            c.kill(n)
        c.kill(leader)
        return {"leader": leader, "followers": followers}

    async def _stall_kill_undo(self, detail: dict[str, Any]) -> dict[str, Any]:
        if "skipped" in detail:
            return {}
        c = self.cluster
        for n in detail["followers"]:
            c.start(n)  # a fresh process: nothing armed
        # The followers elect among themselves before the old leader is back (its log
        # is the longest: back too soon, it would win and repair what they lost).
        t0 = self.clock()
        elected = None
        while elected is None and self.clock() - t0 < 10.0:
            await asyncio.sleep(0.2)
            elected = await c.leader()
        c.start(detail["leader"])
        return {
            "followers_elected": elected,
            "elected_in_s": round(self.clock() - t0, 2),
            "pids_after": self._pids(c.names),
        }

    # --- lag-elect ---

    async def _lag_elect(self, f: Fault) -> dict[str, Any]:
        c = self.cluster
        leader = await c.leader()
        if leader is None:
            return {"skipped": "no leader"}
        if f.shape in ("stale-append", "commit-unknown"):
            return await self._lag_trap(f, leader)
        if f.shape in ("stale-leader", "stale-leader-restart"):
            return await self._stale_leader(leader, restart_victim=f.shape.endswith("restart"))
        if f.shape == "twin-candidates":
            return await self._twin_candidates(leader)
        if f.shape == "figure8":
            return await self._figure8(leader)
        if f.shape == "slow-isolated-leader":
            clock = await self._set_clock(leader, 0.0, 0.25)
            c.net.cut_between([leader], [n for n in c.names if n != leader])
            return {"leader": leader, "slowed": leader, "clock": clock}
        behind = random.Random(f.pick).choice([n for n in c.names if n != leader])
        # The up-to-date nodes' vote requests are dropped from the kill on (framed
        # links, tapped before the cut so the heal needs no reconnect): only `behind`
        # can stand, so the election is decided by whether its voters check its log.
        # With the proxy backend only; under netns the election is a race instead.
        mutes: dict[tuple[str, str], DropVoteRequests] = {}
        if hasattr(c.net, "tap"):
            ahead = [n for n in c.names if n not in (leader, behind)]
            mutes = {(u, x): DropVoteRequests() for u in ahead for x in c.names if x != u}
            for (u, x), mute in mutes.items():
                c.net.tap(u, x, mute)
            await asyncio.sleep(0.3)  # the tapped links reconnect, framed from the start
        c.net.cut_between([behind], [n for n in c.names if n != behind])
        await asyncio.sleep(2.0)  # writes commit on the rest; `behind` misses them
        c.kill(leader)
        for mute in mutes.values():
            mute.armed = True
        c.net.heal(keep_taps=list(mutes))
        self._mutes = mutes
        if mutes:
            # However short the fault's own duration: the voters' leases (an election
            # timeout after the kill) run out and `behind` asks again at least once.
            await asyncio.sleep(MUTED_ELECTION)
        return {"leader": leader, "behind": behind, "muted": sorted({u for u, _ in mutes})}

    async def _lag_trap(self, f: Fault, leader: str) -> dict[str, Any]:
        c = self.cluster
        if not hasattr(c.net, "tap"):
            raise RuntimeError(f"lag-elect:{f.shape} needs the proxy backend (--net proxy)")
        rng = random.Random(f.pick)
        followers = [n for n in c.names if n != leader]
        behind = rng.sample(followers, (len(c.names) - 1) // 2)
        partners = [n for n in followers if n not in behind]
        mode = "duplicate" if f.shape == "stale-append" else "freeze"
        traps = {p: FrameTrap(mode, min_pending=4) for p in partners}
        for p, trap in traps.items():
            c.net.tap(leader, p, trap)
        # commit-unknown: the lagging side's append acks to the partners are held
        # once the leader is gone; tapped now, so that the heal needs no reconnect
        # (a reconnect loses the first vote messages and slows the election).
        slow = {(b, p): SlowAppendAcks(ACK_HOLD) for b in behind for p in partners}
        if mode == "freeze":
            for b, p in slow:
                c.net.tap(b, p, slow[(b, p)])
                c.net.tap(p, b, _pass)  # framed too, for the same reason
        c.net.cut_between(behind, [n for n in c.names if n not in behind])
        if mode == "freeze":
            # Slow acks: the leader pipelines appends that carry a commit index
            # 0.15 s old, so the follower holds that much it cannot know committed.
            for p in partners:
                c.net.set(p, leader, delay=DELAY)
        await asyncio.sleep(2.0)  # writes commit on leader + partners; `behind` lags
        for trap in traps.values():
            trap.armed = True
        for wait in (2.0, 1.0):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(t.fired.wait() for t in traps.values())), wait
                )
            for trap in traps.values():
                trap.min_pending = 1
        # The leader counts the (slowed) acks and answers its clients.
        await asyncio.sleep(0.3 if mode == "duplicate" else 0.3 + 2 * DELAY)
        c.kill(leader)
        kept = [k for b, p in slow for k in ((b, p), (p, b))]
        c.net.heal(keep_taps=kept if mode == "freeze" else ())
        fired = {p: {**t.detail, "dropped_after": t.dropped} for p, t in traps.items()}
        self._slow_acks = slow if mode == "freeze" else {}
        return {"leader": leader, "behind": behind, "trapped": fired}

    async def _stale_leader(self, leader: str, restart_victim: bool = False) -> dict[str, Any]:
        """The old leader's appends arrive after a new leader's (see the docstring);
        with ``restart_victim`` they arrive just after the victim was restarted."""
        c = self.cluster
        if not hasattr(c.net, "tap"):
            raise RuntimeError("lag-elect:stale-leader needs the proxy backend (--net proxy)")
        others = [n for n in c.names if n != leader]
        holds = {p: HoldTrap() for p in others}
        reveals = {(a, b): RevealTrap() for a in others for b in others if a != b}
        for p, hold in holds.items():
            c.net.tap(leader, p, hold)
        for (a, b), trap in reveals.items():
            # a -> b carries a's appends to b (a leads) and a's acks to b (b leads)
            c.net.tap(a, b, Chain(trap, SlowAppendAcks(STALE_ACK_HOLD)))
        await asyncio.sleep(0.3)  # the tapped links reconnect, framed from the start
        for hold in holds.values():
            hold.armed = True
        for p in others:
            c.net.set(p, leader, cut=True)  # no acks: the old leader commits nothing
        for trap in reveals.values():
            trap.armed = True
        fired = None
        for _ in range(100):  # a new leader is about to reveal its term's commit
            fired = next((k for k, t in reveals.items() if t.fired.is_set()), None)
            if fired is not None:
                break
            await asyncio.sleep(0.1)
        if fired is None:
            c.net.heal()
            return {"old_leader": leader, "skipped": "no new leader within 10 s"}
        new, victim = fired
        restart: dict[str, Any] = {}
        if restart_victim:
            restart = await self._restart_behind_hold(victim, holds[victim])
        released = holds[victim].release()
        await asyncio.sleep(0.3)
        c.kill(new)
        c.net.heal()
        return {
            "leader": new,  # killed: restarted at the window's end
            "old_leader": leader,
            "victim": victim,
            "revealed": reveals[fired].detail,
            "stale_frames_released": released,
            **restart,
        }

    async def _restart_behind_hold(self, victim: str, hold: HoldTrap) -> dict[str, Any]:
        """kill -9 and restart ``victim``, then wait until it answers and the held link
        has reconnected to the new process (the held frames go out on that connection).
        A node that persisted its term and vote comes back refusing the stale term; one
        that did not (the planted ``no-persist-term-vote``) comes back at its first term."""
        c = self.cluster
        before = hold.attaches
        c.kill(victim)
        c.start(victim)
        t0 = self.clock()
        up = False
        while self.clock() - t0 < 8.0 and not (up and hold.attaches > before):
            await asyncio.sleep(0.05)
            up = up or await c.status(victim) is not None
        return {
            "victim_restarted_in_s": round(self.clock() - t0, 2),
            "victim_term_after_restart": (await c.debug_status(victim)).get("term"),
            "hold_reconnected": hold.attaches > before,
        }

    async def _twin_candidates(self, leader: str) -> dict[str, Any]:
        """Two followers made candidates in one term (see the module docstring)."""
        c = self.cluster
        if not hasattr(c.net, "tap"):
            raise RuntimeError("lag-elect:twin-candidates needs the proxy backend")
        a, b = [n for n in c.names if n != leader][:2]
        gate = PreVoteGate()
        c.net.tap(a, b, gate.side(0))
        c.net.tap(b, a, gate.side(1))
        await asyncio.sleep(0.3)  # the tapped links reconnect, framed from the start
        # Both must hold the same log, or the longer one refuses the other's pre-vote:
        # cut the leader off and keep the cut only if the two logs ended equal.
        equal, tries = False, 0
        while not equal and tries < 6:
            tries += 1
            c.net.cut_between([leader], [n for n in c.names if n != leader])
            await asyncio.sleep(0.15)
            # A node that did not answer stands for itself: never equal to the other.
            last = [(await c.debug_status(n)).get("last_index", n) for n in (a, b)]
            equal = last[0] == last[1]
            if not equal:
                c.net.heal()
                await asyncio.sleep(1.0)
        if not equal:
            c.net.heal()
            return {"old_leader": leader, "skipped": f"logs never equal in {tries} cuts"}
        gate.armed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.fired.wait(), 8.0)
        await asyncio.sleep(1.0)  # votes cross; the old leader comes back to both
        c.net.heal()
        return {
            "old_leader": leader,
            "twins": [a, b],
            "cuts": tries,
            "gate_fired": gate.fired.is_set(),
        }

    async def _figure8(self, leader: str) -> dict[str, Any]:
        """Raft's Figure 8 on three nodes (see the module docstring)."""
        c = self.cluster
        if not hasattr(c.net, "tap") or len(c.names) != 3:
            raise RuntimeError("lag-elect:figure8 needs the proxy backend and 3 nodes")
        a = leader
        others = [n for n in c.names if n != a]
        taps = {(x, y): EntryFilter() for x in c.names for y in c.names if x != y}
        for (x, y), tap in taps.items():
            c.net.tap(x, y, tap)  # every link framed: cuts drop whole frames, no reconnects
        await asyncio.sleep(0.3)
        t1 = (await c.debug_status(a)).get("term", 0)
        # 1. The leader is cut off and keeps taking writes (X, term t1) it cannot
        # commit. Between the other two, entries are dropped: the one elected (W, term
        # t2) keeps its first entry (Y) to itself.
        for x, y in ((others[0], others[1]), (others[1], others[0])):
            taps[(x, y)].mode = "no-appends"
        c.net.cut_between([a], others)
        w = await self._await_leader(others, above=t1, within=10.0)
        if w is None:
            self._figure8_heal(taps)
            return {"old_leader": a, "skipped": "no leader among the others within 10 s"}
        v = next(n for n in others if n != w)
        logs = {n: (await c.debug_status(n)).get("last_index") for n in c.names}
        t2 = (await c.debug_status(w)).get("term", 0)
        # 2. W is cut off; the old leader comes back to V alone and is elected (its log
        # is the longest of the two) in t3; its appends to V lose their t3 entries, so V
        # acknowledges X without the t3 no-op.
        c.net.cut_between([w], [a, v])
        taps[(a, v)].mode = "old-terms-only"
        c.net.set(a, v, cut=False)
        c.net.set(v, a, cut=False)
        again = await self._await_leader([a], above=t2, within=10.0)
        if again is None:
            self._figure8_heal(taps)
            return {"old_leader": a, "w": w, "skipped": "old leader not re-elected in 10 s"}
        await asyncio.sleep(1.5)  # V acknowledges X; only a buggy leader commits on that
        commits = {n: (await c.debug_status(n)).get("commit") for n in (a, v)}
        # 3. The old leader dies; W (last term t2 > V's t1) is elected with V's vote and
        # overwrites X: safe only if X was never committed.
        c.kill(a)
        self._figure8_heal(taps)
        return {
            "leader": a,  # killed: restarted at the window's end
            "w": w,
            "v": v,
            "terms": [t1, t2],
            "last_index_at_split": logs,
            "commit_before_kill": commits,
            "commit_told_v": taps[(a, v)].commit_told,
            "entries_cut": taps[(a, v)].cut_entries,
            "appends_dropped": sum(t.dropped for t in taps.values()),
        }

    def _figure8_heal(self, taps: dict[tuple[str, str], EntryFilter]) -> None:
        for tap in taps.values():
            tap.mode = "pass"
        self.cluster.net.heal(keep_taps=list(taps))

    async def _await_leader(self, among: list[str], above: int, within: float) -> str | None:
        """The first of ``among`` to lead in a term above ``above``, or None."""
        t0 = self.clock()
        while self.clock() - t0 < within:
            for n in among:
                st = await self.cluster.debug_status(n, timeout=1.0)
                if st.get("role") == "leader" and st.get("term", 0) > above:
                    return n
            await asyncio.sleep(0.05)
        return None

    # --- leader transfer ---

    async def _transfer(self, f: Fault) -> dict[str, Any]:
        c = self.cluster
        leader = await c.leader()
        mem = await c.members(leader) if leader else None
        if not leader or not mem:
            return {"skipped": "no leader or no member list"}
        followers = sorted(n for n in mem if n != leader and not mem[n].get("is_learner"))
        if not followers:
            return {"skipped": "no voting follower"}
        to = random.Random(f.pick).choice(followers)
        code, data = await c.call(leader, "POST", "/v1/leader/transfer", {"to": mem[to]["id"]})
        return {"from": leader, "to": to, "status": code, "answer": data}

    # --- clock ---

    async def _set_clock(self, node: str, offset_ms: float, rate: float) -> dict[str, Any]:
        self._skewed.add(node)
        body = {"offset_ms": offset_ms, "rate": rate}
        code, data = await self.cluster.call(node, "POST", "/debug/clock", body)
        if code != 200:
            raise RuntimeError(f"clock {body} on {node}: {code} {data}")
        if offset_ms == 0.0 and rate == 1.0:
            self._skewed.discard(node)
        clock: dict[str, Any] = data["clock"]
        return clock

    async def _clock_apply(self, f: Fault, node: str) -> dict[str, Any]:
        rng = random.Random(f.pick)
        if f.shape == "bump":
            offset = rng.choice((-1, 1)) * rng.uniform(500, 5000)
            set_to = await self._set_clock(node, offset, 1.0)
        elif f.shape == "drift":
            set_to = await self._set_clock(node, 0.0, rng.uniform(0.5, 2.0))
        else:  # strobe: the flipping happens in _strobe during the window
            set_to = await self._set_clock(node, 0.0, 1.0)
        seen = (await self.cluster.debug_status(node)).get("clock")
        return {"clock": set_to, "observed": seen}

    async def _strobe(self, node: str, pick: int) -> int:
        """Flip the node's offset between +d and -d every 0.1-0.4 s (Jepsen's strobe)."""
        rng = random.Random(pick + 1)
        d = rng.uniform(200, 2000)
        flips = 0
        try:
            while True:
                flips += 1
                await self._set_clock(node, d if flips % 2 else -d, 1.0)
                await asyncio.sleep(rng.uniform(0.1, 0.4))
        except asyncio.CancelledError:
            return flips
        except Exception:  # noqa: BLE001 - a refused flip ends the strobe; undo resets
            return flips

    # --- membership ---

    async def _membership_apply(self, node: str) -> dict[str, Any]:
        c = self.cluster
        for _ in range(10):  # a member that just rejoined may still be catching up
            leader = await c.leader()
            sts = await asyncio.gather(*(c.status(n) for n in c.names))
            if leader is not None and all(sts):
                break
            await asyncio.sleep(0.5)
        if leader is None or len(c.names) < 3 or not all(sts) or node == leader:
            # Removing now could leave fewer than a healthy majority: skip honestly.
            silent = [n for n, st in zip(c.names, sts, strict=True) if not st]
            return {"skipped": "cluster not fully healthy", "leader": leader, "silent": silent}
        out = await c.remove_member(node, leader)
        out["leader"] = leader
        out["members_after_remove"] = sorted(c.names)
        return out

    async def _membership_undo(self, f: Fault, node: str) -> dict[str, Any]:
        c = self.cluster
        leader = await c.leader()
        deadline = self.clock() + 20
        while leader is None and self.clock() < deadline:
            await asyncio.sleep(0.3)
            leader = await c.leader()
        if leader is None:
            raise RuntimeError("no leader to add a member through")
        if f.shape == "remove-readd":
            c.wipe(node)
            name = node
        else:
            name = self._next_name()
            c.new_node(name)
        out = await c.join_member(name, leader)
        members = await c.members(leader)
        out["members"] = sorted(members or {})
        return out

    def _next_name(self) -> str:
        i = len(self.cluster.nodes) + 1
        while f"n{i}" in self.cluster.nodes:
            i += 1
        return f"n{i}"

    # --- the end ---

    def final_heal(self) -> None:
        """Heal everything regardless of what the schedule left behind."""
        c = self.cluster
        self._hostile.abort()
        c.net.heal()
        for n in c.names:
            if c.nodes[n].paused:
                c.resume(n)
            if not c.alive(n):
                c.start(n)
        # Every fault undoes itself; these catch an undo that failed. Blocking calls
        # are fine here: the workload has ended.
        for n in sorted(self._skewed):
            _post(c.nodes[n].url + "/debug/clock", {"offset_ms": 0, "rate": 1})
        for n, fp in sorted(self._armed.items()):
            _post(c.nodes[n].url + "/debug/failpoints", {fp: "off"})
        self.log("final-heal", "all", clock_reset=sorted(self._skewed), disarmed=self._armed)

    def close(self) -> None:
        self._hostile.abort()
        self.fh.close()


def _post(url: str, body: dict[str, Any]) -> None:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with contextlib.suppress(OSError, ValueError):
        urllib.request.urlopen(req, timeout=2).close()  # noqa: S310 - loopback test node


def fault_dicts(faults: list[Fault]) -> list[dict[str, Any]]:
    return [asdict(f) for f in faults]
