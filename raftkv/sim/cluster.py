"""A deterministic whole-cluster simulator for the Raft core.

One seed drives everything: message delays, loss, duplication and reordering,
partitions, crashes (including mid-Ready, after persisting but before sending),
restarts from durable state only, membership changes, snapshots and compaction, and
a client workload of register writes and ReadIndex reads. Time is virtual: a tick is
`UNITS_PER_TICK` units and messages take a few units, so a run replays exactly.

Raft's safety properties are checked after every step (`_check_step`); liveness and
linearizability are checked once the faults heal. The first violation stops the run
with a `Violation` that carries the seed and the tail of the event trace.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field

from raftkv.node.driver import (
    Apply,
    Driver,
    DriverBugs,
    DriverConfig,
    Effect,
    Hook,
    Persist,
    Resolve,
    RoleChanged,
    Send,
    TakeSnapshot,
)
from raftkv.raft import (
    Config,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    Raft,
    Role,
    bootstrap,
)
from raftkv.sim.checks import SafetyChecks
from raftkv.sim.faults import UNITS_PER_TICK, FaultInjector
from raftkv.sim.history import Op

MT = MessageType
# Driver hooks where a node may crash, with the fault's name and its probability.
CRASH_POINTS = {
    "after_persist_before_send": ("crash_after_persist", 0.005),
    "after_apply_before_ack": ("crash_after_apply", 0.002),
}


class Violation(Exception):
    def __init__(self, kind: str, detail: str, seed: int, trace: list[str]) -> None:
        super().__init__(f"[seed {seed}] {kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.seed = seed
        self.trace = trace

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Campaigns run seeds in worker processes: a violation must cross back.
        return (Violation, (self.kind, self.detail, self.seed, self.trace))


@dataclass
class SimConfig:
    seed: int
    nodes: int = 3
    fault_ticks: int = 200
    heal_ticks: int = 300  # liveness bound: a leader and a committed probe within this
    clients: int = 3
    faults: bool = True
    membership: bool = True
    bugs: frozenset[str] = frozenset()
    # Planted ordering bugs in the production Ready driver (node/driver.py):
    # "send_before_persist" sends acks and votes before their state is durable.
    driver_bugs: frozenset[str] = frozenset()
    snapshot_every: int = 20
    snapshot_keep: int = 4
    election_tick: int = 10
    op_timeout_ticks: int = 40
    # "mixed": every fault at moderate rates. "leader-churn": one-entry messages, a
    # window of one, lossy links and frequent kills of leaders whose tail is not yet
    # committed -- the designated nemesis for commit-rule bugs (Figure 8).
    profile: str = "mixed"


@dataclass
class SimResult:
    seed: int
    nodes: int
    faults: Counter[str] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    elections: int = 0
    committed: int = 0
    messages: int = 0
    snapshots_installed: int = 0
    conf_changes: int = 0


class SimNode:
    """A node's durable storage plus (while up) its core and volatile state machine."""

    def __init__(self, nid: int, storage: MemoryStorage) -> None:
        self.id = nid
        self.storage = storage
        self.core: Raft | None = None
        self.driver: Driver | None = None
        self.retired = False
        self.applied = 0
        self.value: int | None = None
        # Writes already applied: a duplicated or retried proposal is applied once,
        # like the real state machine's request-id dedup table.
        self.seen: set[int] = set()
        # Ops waiting on this node, by op id (the driver's waiter token).
        self.waiting_writes: dict[int, Op] = {}
        self.waiting_reads: dict[int, Op] = {}
        self.last_role = Role.FOLLOWER
        self.last_commit = 0
        self.paused_until = 0  # SIGSTOP: no ticks, no messages until this unit
        self.clock_skip = 0.0  # slow clock: probability a tick is missed

    @property
    def up(self) -> bool:
        return self.core is not None


def _encode_state(value: int | None, seen: set[int]) -> bytes:
    head = b"-" if value is None else str(value).encode()
    return b",".join([head, *(str(v).encode() for v in sorted(seen))])


def _decode_state(b: bytes) -> tuple[int | None, set[int]]:
    if not b:
        return None, set()
    head, *rest = b.split(b",")
    return (None if head == b"-" else int(head)), {int(v) for v in rest}


def _register_at(log: dict[int, tuple[int, bytes]], index: int) -> tuple[int | None, set[int]]:
    """The deduplicating register's state after applying log[1..index]."""
    value, seen = None, set()
    for i in range(1, index + 1):
        data = log[i][1]
        if data.startswith(b"w:"):
            v = int(data[2:])
            if v not in seen:
                seen.add(v)
                value = v
    return value, seen


class Network:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.queue: list[tuple[int, int, Message]] = []
        self.seq = 0
        self.blocked: set[tuple[int, int]] = set()
        self.drop_p = 0.0
        self.dup_p = 0.0
        self.delay = (1, 4)
        self.sent = 0

    def send(self, m: Message, now: int) -> None:
        self.sent += 1
        if self.drop_p and self.rng.random() < self.drop_p:
            return
        copies = 2 if self.dup_p and self.rng.random() < self.dup_p else 1
        for _ in range(copies):
            self.seq += 1
            at = now + self.rng.randint(*self.delay)
            heapq.heappush(self.queue, (at, self.seq, m))

    def due(self, now: int, paused: set[int]) -> list[Message]:
        out, held = [], []
        while self.queue and self.queue[0][0] <= now:
            at, seq, m = heapq.heappop(self.queue)
            if m.to in paused:
                held.append((at, seq, m))  # sits in the socket buffer until resumed
            elif (m.frm, m.to) not in self.blocked:
                out.append(m)
        for item in held:
            heapq.heappush(self.queue, (now + 1, item[1], item[2]))
        return out

    def heal(self) -> None:
        self.blocked.clear()
        self.drop_p = 0.0
        self.dup_p = 0.0
        self.delay = (1, 4)


class Simulation(FaultInjector, SafetyChecks):
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.net = Network(random.Random(self.rng.getrandbits(64)))
        self.now = 0
        self.seq = 0  # global event order for the history (real time)
        self.trace: list[str] = []
        self.result = SimResult(cfg.seed, cfg.nodes)
        self.nodes: dict[int, SimNode] = {}
        self.next_id = cfg.nodes + 1
        self.ops: list[Op] = []
        self.client_busy: dict[int, Op | None] = {c: None for c in range(cfg.clients)}
        self.next_value = 1
        self.leaders: dict[int, int] = {}  # term -> leader id (election safety)
        self.committed_log: dict[int, tuple[int, bytes]] = {}  # index -> (term, data)
        # index -> an upper bound on the term in which it was committed: the term of
        # the first node seen with a commit index covering it. (A node learns commit
        # only from a leader of its term or earlier, so this bound is sound.)
        self.commit_term: dict[int, int] = {}
        self.commit_term_high = 0
        self.pending_removal: set[int] = set()
        # Flow-control settings vary by seed: tiny messages (one entry each) reach
        # interleavings, like Figure 8's, that big batches hide.
        self.max_msg_bytes = self.rng.choice([1, 64, 2048, 1 << 20])
        self.max_inflight = self.rng.choice([1, 4, 64])
        self.fresh_leader_kill_p = 0.004
        if cfg.profile == "leader-churn":
            self.max_msg_bytes, self.max_inflight = 1, 1
            self.fresh_leader_kill_p = 0.03
            self.net.drop_p = 0.1
        elif cfg.profile != "mixed":
            raise ValueError(f"unknown simulation profile {cfg.profile!r}")
        ids = list(range(1, cfg.nodes + 1))
        entries, hs, cs = bootstrap(ids)
        for nid in ids:
            st = MemoryStorage()
            st.append(entries)
            st.set_hard_state(hs)
            st.conf_state = cs
            self.nodes[nid] = SimNode(nid, st)
            self._start(self.nodes[nid])

    # ------------------------------------------------------------------ utils
    def _log(self, msg: str) -> None:
        self.trace.append(f"t={self.now / UNITS_PER_TICK:.1f} {msg}")
        if len(self.trace) > 400:
            del self.trace[:200]

    def _fail(self, kind: str, detail: str) -> None:
        raise Violation(kind, detail, self.cfg.seed, self.trace[-60:])

    def _event(self) -> int:
        self.seq += 1
        return self.seq

    def _start(self, n: SimNode) -> None:
        snap = n.storage.snapshot()
        n.applied = snap.meta.index
        n.value, n.seen = _decode_state(snap.data)
        cfg = Config(
            id=n.id,
            election_tick=self.cfg.election_tick,
            heartbeat_tick=1,
            applied=n.applied,
            max_inflight_msgs=self.max_inflight,
            max_size_per_msg=self.max_msg_bytes,
            bugs=self.cfg.bugs,
        )
        n.core = Raft(cfg, n.storage, random.Random(self.rng.getrandbits(64)))
        bugs = DriverBugs(send_before_persist="send_before_persist" in self.cfg.driver_bugs)
        dcfg = DriverConfig(
            snapshot_count=self.cfg.snapshot_every,
            snapshot_bytes=1 << 40,
            snapshot_keep=self.cfg.snapshot_keep,
            bugs=bugs,
        )
        n.driver = Driver(
            n.core, dcfg, applied=n.applied, snapshot_index=snap.meta.index, node_id=n.id
        )
        n.last_role = Role.FOLLOWER
        n.last_commit = n.core.log.committed

    def _crash(self, n: SimNode, why: str) -> None:
        n.core = None
        n.driver = None
        for op in n.waiting_writes.values():
            self._finish(op, "info", None)
        for op in n.waiting_reads.values():
            self._finish(op, "fail", None)
        n.waiting_writes.clear()
        n.waiting_reads.clear()
        self.result.faults["crash"] += 1
        self._log(f"crash n{n.id} ({why})")

    def _finish(self, op: Op, status: str, value: int | None) -> None:
        op.status = status
        op.complete = self._event()
        if op.kind == "r":
            op.value = value
        self.client_busy[op.client] = None
        self.result.ops[f"{op.kind}:{status}"] += 1

    def up_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up]

    def running_nodes(self) -> list[SimNode]:
        return [n for n in self.nodes.values() if n.up and n.paused_until <= self.now]

    def leader(self) -> SimNode | None:
        best = None
        for n in self.up_nodes():
            assert n.core is not None
            if n.core.role == Role.LEADER and (best is None or n.core.term > best.core.term):  # type: ignore[union-attr]
                best = n
        return best

    # ------------------------------------------------------------------ ready
    def _process_ready(self, n: SimNode, may_crash: bool) -> None:
        """Run the production Ready driver (node/driver.py) over in-memory effects."""
        core, driver = n.core, n.driver
        assert core is not None and driver is not None
        guard = 0
        while core.has_ready():
            guard += 1
            if guard > 1000:
                self._fail("livelock", f"n{n.id} produced Ready forever")
            gen = driver.process(core.ready())
            outcome: object = None
            while True:
                try:
                    effect = gen.send(outcome)
                except StopIteration:
                    break
                outcome = self._execute(n, effect, may_crash)
                if n.core is None:
                    return  # crashed at this effect: nothing after it happened

    def _execute(self, n: SimNode, effect: Effect, may_crash: bool) -> object:
        if isinstance(effect, Send):
            for m in effect.messages:
                self._check_durable_before_send(n, m)
                self.net.send(m, self.now)
        elif isinstance(effect, Persist):
            if effect.snapshot is not None:
                self._install_snapshot(n, effect.snapshot)
            n.storage.append(effect.entries)
            if effect.hard_state is not None:
                n.storage.set_hard_state(effect.hard_state)
        elif isinstance(effect, Hook):
            if may_crash and effect.name in CRASH_POINTS:
                fault, p = CRASH_POINTS[effect.name]
                if self.rng.random() < p:
                    self.result.faults[fault] += 1
                    self._crash(n, effect.name.replace("_", " "))
        elif isinstance(effect, Apply):
            return [self._apply(n, e) for e in effect.entries]
        elif isinstance(effect, Resolve):
            for token, _ in effect.proposals:
                op = n.waiting_writes.pop(token, None)  # type: ignore[call-overload]
                if op is not None:
                    self._finish(op, "ok", None)
            for token in effect.reads:
                op = n.waiting_reads.pop(token, None)  # type: ignore[call-overload]
                if op is not None:
                    self._finish(op, "ok", n.value)
        elif isinstance(effect, TakeSnapshot):
            st = n.storage
            st.create_snapshot(effect.index, effect.conf_state, _encode_state(n.value, n.seen))
            st.compact(max(effect.compact_to, st.first_index() - 1))
        else:
            assert isinstance(effect, RoleChanged)
        return None

    def _install_snapshot(self, n: SimNode, snap) -> None:  # type: ignore[no-untyped-def]
        idx = snap.meta.index
        # The snapshot must equal the register as of `idx` in the committed log.
        missing = [i for i in range(1, idx + 1) if i not in self.committed_log]
        if missing:
            self._fail("snapshot", f"n{n.id} got snapshot at {idx} covering unknown {missing[0]}")
        expect = _register_at(self.committed_log, idx)
        got = _decode_state(snap.data)
        if got != expect:
            self._fail("snapshot", f"n{n.id} snapshot at {idx} holds {got}, log says {expect}")
        n.storage.apply_snapshot(snap)
        n.applied = idx
        n.value, n.seen = got
        self.result.snapshots_installed += 1
        self._log(f"n{n.id} installed snapshot at {idx}")

    def _apply(self, n: SimNode, e: Entry) -> tuple[bytes | None, None]:
        if e.index != n.applied + 1:
            self._fail("apply order", f"n{n.id} applied {e.index} after {n.applied}")
        rec = (e.term, e.data if e.type == EntryType.NORMAL else b"cc:" + e.data)
        prev = self.committed_log.get(e.index)
        if prev is None:
            self.committed_log[e.index] = rec
            self.result.committed = max(self.result.committed, e.index)
        elif prev != rec:
            self._fail(
                "state machine safety",
                f"n{n.id} applied {rec} at index {e.index}, another node applied {prev}",
            )
        n.applied = e.index
        if e.type == EntryType.NORMAL and e.data.startswith(b"w:"):
            v = int(e.data[2:])
            if v not in n.seen:
                n.seen.add(v)
                n.value = v
            return (e.data, None)  # the entry is its own request id: values are unique
        return (None, None)

    # ------------------------------------------------------------------ clients
    def _client_ops(self) -> None:
        up = self.running_nodes()
        for c in sorted(self.client_busy):
            if self.client_busy[c] is not None or not up or self.rng.random() < 0.5:
                continue
            n = self.rng.choice(up)
            core = n.core
            assert core is not None
            if self.rng.random() < 0.6:
                value = self.next_value
                self.next_value += 1
                op = Op(len(self.ops), c, "w", value, n.id, self._event())
                data = b"w:%d" % value
                try:
                    n.driver.propose(data, data, op.id)  # type: ignore[union-attr]
                except ProposalDropped:
                    self.ops.append(op)
                    self._finish(op, "fail", None)
                    continue
                n.waiting_writes[op.id] = op
            else:
                op = Op(len(self.ops), c, "r", None, n.id, self._event())
                n.driver.read(op.id)  # type: ignore[union-attr]
                n.waiting_reads[op.id] = op
            op.deadline = self.now + self.cfg.op_timeout_ticks * UNITS_PER_TICK  # type: ignore[attr-defined]
            self.ops.append(op)
            self.client_busy[c] = op
        # Reads queued this tick share one ReadIndex round per node, as in the node.
        for n in up:
            for token in n.driver.flush_reads():  # type: ignore[union-attr]
                op = n.waiting_reads.pop(token, None)  # type: ignore[call-overload]
                if op is not None:
                    self._finish(op, "fail", None)

    def _expire_ops(self) -> None:
        for n in self.up_nodes():
            for table, status in ((n.waiting_writes, "info"), (n.waiting_reads, "fail")):
                for key in [k for k, op in table.items() if op.deadline <= self.now]:  # type: ignore[attr-defined]
                    op = table.pop(key)
                    if op.kind == "w":
                        n.driver.forget(b"w:%d" % op.value, key)  # type: ignore[union-attr]
                    self._finish(op, status, None)

    # ------------------------------------------------------------------ run
    def _unit(self, faults: bool, clients: bool) -> None:
        if faults:
            self._kill_fresh_leader()
        if self.now % UNITS_PER_TICK == 0:
            if faults:
                self._inject_faults()
            for n in self.running_nodes():
                if not n.clock_skip or self.rng.random() >= n.clock_skip:
                    n.driver.tick()  # type: ignore[union-attr]
            if clients:
                self._client_ops()
            self._expire_ops()
            self._retire_removed()
        paused = {n.id for n in self.up_nodes() if n.paused_until > self.now}
        for m in self.net.due(self.now, paused):
            n = self.nodes.get(m.to)
            if n is None or not n.up:
                continue
            n.core.step(m)  # type: ignore[union-attr]
        for n in self.running_nodes():
            self._process_ready(n, may_crash=faults)
        full = self.now % (5 * UNITS_PER_TICK) == 0
        self._check_step(full)
        self.now += 1

    def run(self) -> SimResult:
        cfg = self.cfg
        try:
            for _ in range(cfg.fault_ticks * UNITS_PER_TICK):
                self._unit(faults=cfg.faults, clients=True)
            self._heal_and_check_liveness()
        except (AssertionError, ProposalDropped) as e:
            # The core's own safety assertions (LogSafetyError), or a peer's message
            # that made the core raise: in a real node that takes the driver down.
            self._fail("core assertion", f"{type(e).__name__}: {e}")
        self._check_linearizability()
        self.result.messages = self.net.sent
        self.result.elections = len(self.leaders)
        return self.result

    def _heal_and_check_liveness(self) -> None:
        self.net.heal()
        for n in self.nodes.values():
            n.paused_until = 0
            n.clock_skip = 0.0
            if not n.retired and not n.up:
                self._start(n)
                self._log(f"restart n{n.id} (heal)")
        self._log("healed")
        probe: bytes | None = None
        probe_node: SimNode | None = None
        start = self.now
        limit = start + self.cfg.heal_ticks * UNITS_PER_TICK
        while self.now < limit:
            self._unit(faults=False, clients=False)
            leader = self.leader()
            if leader is None:
                continue
            members = leader.core.conf.all_nodes()  # type: ignore[union-attr]
            if probe is None or probe_node is not leader:
                probe = b"p:%d" % self.now
                probe_node = leader
                try:
                    leader.core.propose(probe)  # type: ignore[union-attr]
                except ProposalDropped:
                    probe = None
                    continue
            probe_index = next((i for i, (_, d) in self.committed_log.items() if d == probe), None)
            if probe_index is None:
                continue
            if all(self.nodes[m].up and self.nodes[m].applied >= probe_index for m in members):
                # Drain outstanding client ops so the history is complete.
                for _ in range(self.cfg.op_timeout_ticks * UNITS_PER_TICK):
                    self._unit(faults=False, clients=False)
                return
        leader = self.leader()
        self._fail(
            "liveness",
            f"no committed probe within {self.cfg.heal_ticks} ticks of healing "
            f"(leader={leader.id if leader else None})",
        )


def run_seed(
    seed: int,
    nodes: int | None = None,
    bugs: frozenset[str] = frozenset(),
    profile: str | None = None,
    driver_bugs: frozenset[str] = frozenset(),
) -> SimResult:
    """Run one seed. Unless given, the cluster size alternates 3/5 by seed and every
    fourth seed uses the leader-churn profile, so a campaign covers both."""
    n = nodes if nodes is not None else (3 if seed % 2 == 0 else 5)
    prof = profile if profile is not None else ("leader-churn" if seed % 4 == 3 else "mixed")
    cfg = SimConfig(seed=seed, nodes=n, bugs=bugs, profile=prof, clients=4, driver_bugs=driver_bugs)
    return Simulation(cfg).run()
