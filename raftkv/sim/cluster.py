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

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
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
from raftkv.sim.history import Op, check_register

UNITS_PER_TICK = 10
MT = MessageType


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
        self.retired = False
        self.applied = 0
        self.value: int | None = None
        # Writes already applied: a duplicated or retried proposal is applied once,
        # like the real state machine's request-id dedup table.
        self.seen: set[int] = set()
        self.waiting_writes: dict[bytes, Op] = {}
        self.waiting_reads: dict[bytes, Op] = {}
        self.read_points: list[tuple[int, bytes]] = []
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


class Simulation:
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
        n.last_role = Role.FOLLOWER
        n.last_commit = n.core.log.committed

    def _crash(self, n: SimNode, why: str) -> None:
        n.core = None
        for op in n.waiting_writes.values():
            self._finish(op, "info", None)
        for op in n.waiting_reads.values():
            self._finish(op, "fail", None)
        n.waiting_writes.clear()
        n.waiting_reads.clear()
        n.read_points.clear()
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
        core = n.core
        assert core is not None
        guard = 0
        while core.has_ready():
            guard += 1
            if guard > 1000:
                self._fail("livelock", f"n{n.id} produced Ready forever")
            rd = core.ready()
            # 0. a leader's appends and heartbeats may leave before its own fsync.
            for m in rd.early_messages:
                self._check_durable_before_send(n, m)
                self.net.send(m, self.now)
            # 1. persist: snapshot, entries, hard state.
            if rd.snapshot is not None:
                self._install_snapshot(n, rd.snapshot)
            n.storage.append(rd.entries)
            if rd.hard_state is not None:
                n.storage.set_hard_state(rd.hard_state)
            if may_crash and self.rng.random() < 0.002:
                self.result.faults["crash_after_persist"] += 1
                self._crash(n, "after persist, before send")
                return
            # 2. send (only now: the messages promise durable state).
            for m in rd.messages:
                self._check_durable_before_send(n, m)
                self.net.send(m, self.now)
            # 3. apply.
            for e in rd.committed_entries:
                self._apply(n, e)
            n.read_points.extend((rs.index, rs.context) for rs in rd.read_states)
            core.advance(rd)
            self._serve_reads(n)
            self._maybe_snapshot(n)

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

    def _check_durable_before_send(self, n: SimNode, m: Message) -> None:
        hs = n.storage.hard_state
        if m.term and m.term > hs.term and m.type not in (MT.PRE_VOTE, MT.PRE_VOTE_RESP):
            self._fail(
                "durability", f"n{n.id} sent {m.type.name} at term {m.term} > durable {hs.term}"
            )
        # A vote promised in the durable term must be the durable vote. (A vote sent
        # in an older term is harmless: the node can never vote in that term again.)
        granted = m.type == MT.VOTE_RESP and not m.reject
        if granted and m.term == hs.term and hs.vote != m.to:
            self._fail("durability", f"n{n.id} granted a vote to n{m.to} before persisting it")
        if m.type == MT.VOTE and m.term == hs.term and hs.vote != n.id:
            self._fail("durability", f"n{n.id} campaigned before persisting its own vote")
        if m.type == MT.APP_RESP and not m.reject and m.index > n.storage.last_index():
            self._fail(
                "durability",
                f"n{n.id} acked index {m.index} but only {n.storage.last_index()} is durable",
            )

    def _apply(self, n: SimNode, e: Entry) -> None:
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
            op = n.waiting_writes.pop(e.data, None)
            if op is not None:
                self._finish(op, "ok", None)

    def _serve_reads(self, n: SimNode) -> None:
        if not n.read_points:
            return
        keep = []
        for index, ctx in n.read_points:
            op = n.waiting_reads.get(ctx)
            if op is None:
                continue
            if n.applied >= index:
                del n.waiting_reads[ctx]
                self._finish(op, "ok", n.value)
            else:
                keep.append((index, ctx))
        n.read_points = keep

    def _maybe_snapshot(self, n: SimNode) -> None:
        st = n.storage
        assert n.core is not None
        if n.applied - st.snapshot().meta.index < self.cfg.snapshot_every:
            return
        if n.applied > st.last_index():
            return
        st.create_snapshot(n.applied, n.core.conf, _encode_state(n.value, n.seen))
        st.compact(max(n.applied - self.cfg.snapshot_keep, st.first_index() - 1))

    # ------------------------------------------------------------------ checks
    def _check_step(self, full: bool) -> None:
        for n in self.up_nodes():
            core = n.core
            assert core is not None
            if core.role == Role.LEADER:
                prev = self.leaders.setdefault(core.term, n.id)
                if prev != n.id:
                    self._fail("election safety", f"n{prev} and n{n.id} both led term {core.term}")
                if n.last_role != Role.LEADER:
                    self._log(f"n{n.id} became leader term {core.term}")
                    self._check_leader_completeness(n)
            n.last_role = core.role
            while self.commit_term_high < core.log.committed:
                self.commit_term_high += 1
                self.commit_term[self.commit_term_high] = core.term
            if core.log.committed < n.last_commit:
                self._fail(
                    "commit regression", f"n{n.id} commit {n.last_commit}->{core.log.committed}"
                )
            n.last_commit = core.log.committed
        if full:
            self._check_log_matching()

    def _check_leader_completeness(self, n: SimNode) -> None:
        core = n.core
        assert core is not None
        log = core.log
        first = log.first_index()
        for idx, (term, _) in self.committed_log.items():
            # Only entries committed in an earlier term bind this leader (a leader of
            # a stale term, e.g. one resumed from a pause, may lack newer commits).
            if self.commit_term.get(idx, core.term) >= core.term:
                continue
            if idx >= first and log.term(idx) != term:
                self._fail(
                    "leader completeness",
                    f"n{n.id} leads term {n.core.term} without committed entry {idx}",  # type: ignore[union-attr]
                )

    def _check_log_matching(self) -> None:
        seen: dict[tuple[int, int], bytes] = {}
        for n in self.up_nodes():
            log = n.core.log  # type: ignore[union-attr]
            last = log.last_index()
            lo = max(log.first_index(), last - 40)
            for e in log.slice(lo, last + 1):
                key = (e.index, e.term)
                prev = seen.setdefault(key, e.data)
                if prev != e.data:
                    self._fail(
                        "log matching", f"two different entries at index {e.index} term {e.term}"
                    )

    # ------------------------------------------------------------------ faults
    def _inject_faults(self) -> None:
        r = self.rng.random
        up = self.up_nodes()
        members = [n for n in self.nodes.values() if not n.retired]
        if r() < 0.012 and up:
            self._crash(self.rng.choice(up), "nemesis")
        running = self.running_nodes()
        if running and r() < 0.015:
            # SIGSTOP: a paused leader wakes up still believing it leads.
            leader = self.leader()
            n = leader if leader is not None and r() < 0.5 else self.rng.choice(running)
            n.paused_until = self.now + self.rng.randint(5, 40) * UNITS_PER_TICK
            self.result.faults["pause"] += 1
            self._log(f"pause n{n.id} until t={n.paused_until / UNITS_PER_TICK:.0f}")
        if running and r() < 0.01:
            n = self.rng.choice(running)
            n.clock_skip = self.rng.choice([0.0, 0.1, 0.3])
            self.result.faults["clock drift"] += 1
        down = [n for n in members if not n.up]
        if down and r() < 0.06:
            n = self.rng.choice(down)
            self._start(n)
            self.result.faults["restart"] += 1
            self._log(f"restart n{n.id}")
        if r() < 0.02:
            self._partition()
        if self.net.blocked and r() < 0.04:
            self.net.blocked.clear()
            self._log("heal partition")
        if r() < 0.01:
            self.net.drop_p = self.rng.choice([0.0, 0.0, 0.05, 0.2, 0.4])
            self.result.faults["loss"] += 1
        if r() < 0.01:
            self.net.dup_p = self.rng.choice([0.0, 0.1, 0.3])
            self.result.faults["duplicate"] += 1
        if r() < 0.01:
            self.net.delay = self.rng.choice([(1, 4), (1, 15), (5, 40)])
            self.result.faults["delay/reorder"] += 1
        if self.cfg.membership and r() < 0.01:
            self._membership_change()

    def _partition(self) -> None:
        ids = sorted(n.id for n in self.nodes.values() if not n.retired)
        shape = self.rng.choice(["isolate", "leader", "split", "oneway", "bridge"])
        blocked: set[tuple[int, int]] = set()
        leader = self.leader()
        if shape == "leader" and leader is None:
            shape = "isolate"
        if shape in ("isolate", "leader"):
            victim = leader.id if shape == "leader" and leader else self.rng.choice(ids)
            for o in ids:
                if o != victim:
                    blocked |= {(victim, o), (o, victim)}
        elif shape == "split":
            side = set(self.rng.sample(ids, len(ids) // 2))
            for a in ids:
                for b in ids:
                    if (a in side) != (b in side):
                        blocked.add((a, b))
        elif shape == "oneway":
            a, b = self.rng.sample(ids, 2)
            blocked.add((a, b))
        else:  # bridge: two halves that only one node can talk to
            shuffled = self.rng.sample(ids, len(ids))
            bridge, rest = shuffled[0], shuffled[1:]
            left, right = set(rest[: len(rest) // 2]), set(rest[len(rest) // 2 :])
            for a in left:
                for b in right:
                    blocked |= {(a, b), (b, a)}
            del bridge
        self.net.blocked = blocked
        self.result.faults[f"partition:{shape}"] += 1
        self._log(f"partition {shape}: {sorted(blocked)}")

    def _membership_change(self) -> None:
        leader = self.leader()
        if leader is None:
            return
        core = leader.core
        assert core is not None
        conf = core.conf
        if conf.learners:
            cc = ConfChange(ConfChangeType.ADD_NODE, min(conf.learners))
        elif len(conf.voters) < self.cfg.nodes + 1:
            nid = self.next_id
            cc = ConfChange(ConfChangeType.ADD_LEARNER, nid)
        elif len(conf.voters) > self.cfg.nodes:
            victim = self.rng.choice(sorted(conf.voters))
            cc = ConfChange(ConfChangeType.REMOVE_NODE, victim)
        else:
            return
        try:
            core.propose_conf_change(cc)
        except ProposalDropped:
            return
        if cc.type == ConfChangeType.ADD_LEARNER:
            self.next_id += 1
            node = SimNode(cc.node_id, MemoryStorage())
            self.nodes[cc.node_id] = node
            self._start(node)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.pending_removal.add(cc.node_id)
        self.result.conf_changes += 1
        self.result.faults[f"member:{cc.type.name.lower()}"] += 1
        self._log(f"propose {cc.type.name} n{cc.node_id} via n{leader.id}")

    def _retire_removed(self) -> None:
        leader = self.leader()
        if leader is None or not self.pending_removal:
            return
        members = leader.core.conf.all_nodes()  # type: ignore[union-attr]
        for nid in sorted(self.pending_removal):
            if nid not in members and leader.core.log.applied >= leader.core.pending_conf_index:  # type: ignore[union-attr]
                node = self.nodes[nid]
                node.retired = True
                if node.up:
                    self._crash(node, "removed from cluster")
                self.pending_removal.discard(nid)

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
                    core.propose(data)
                except ProposalDropped:
                    self.ops.append(op)
                    self._finish(op, "fail", None)
                    continue
                n.waiting_writes[data] = op
            else:
                op = Op(len(self.ops), c, "r", None, n.id, self._event())
                ctx = b"r:%d" % op.id
                try:
                    core.read_index(ctx)
                except ProposalDropped:
                    self.ops.append(op)
                    self._finish(op, "fail", None)
                    continue
                n.waiting_reads[ctx] = op
            op.deadline = self.now + self.cfg.op_timeout_ticks * UNITS_PER_TICK  # type: ignore[attr-defined]
            self.ops.append(op)
            self.client_busy[c] = op

    def _expire_ops(self) -> None:
        for n in self.up_nodes():
            for table, status in ((n.waiting_writes, "info"), (n.waiting_reads, "fail")):
                for key in [k for k, op in table.items() if op.deadline <= self.now]:  # type: ignore[attr-defined]
                    self._finish(table.pop(key), status, None)

    # ------------------------------------------------------------------ run
    def _kill_fresh_leader(self) -> None:
        """Kill a leader whose tail is uncommitted (typically just after its
        election, before its no-op commits): the window in which Figure 8 (counting
        old-term replicas) bites. Checked every unit, not only at tick boundaries."""
        leader = self.leader()
        if leader is None or self.rng.random() >= self.fresh_leader_kill_p:
            return
        log = leader.core.log  # type: ignore[union-attr]
        if log.committed < log.last_index():
            self.result.faults["crash_new_leader"] += 1
            self._crash(leader, "leader with uncommitted tail")

    def _unit(self, faults: bool, clients: bool) -> None:
        if faults:
            self._kill_fresh_leader()
        if self.now % UNITS_PER_TICK == 0:
            if faults:
                self._inject_faults()
            for n in self.running_nodes():
                if not n.clock_skip or self.rng.random() >= n.clock_skip:
                    n.core.tick()  # type: ignore[union-attr]
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

    def _check_linearizability(self) -> None:
        positions = {}
        for idx in sorted(self.committed_log):
            data = self.committed_log[idx][1]
            if data.startswith(b"w:"):
                positions.setdefault(int(data[2:]), idx)  # a duplicate is a no-op
        for op in self.ops:
            if op.status == "pending":
                op.status = "info" if op.kind == "w" else "fail"
        problems = check_register(self.ops, positions)
        if problems:
            self._fail("linearizability", "; ".join(problems[:3]))


def run_seed(
    seed: int,
    nodes: int | None = None,
    bugs: frozenset[str] = frozenset(),
    profile: str | None = None,
) -> SimResult:
    """Run one seed. Unless given, the cluster size alternates 3/5 by seed and every
    fourth seed uses the leader-churn profile, so a campaign covers both."""
    n = nodes if nodes is not None else (3 if seed % 2 == 0 else 5)
    prof = profile if profile is not None else ("leader-churn" if seed % 4 == 3 else "mixed")
    return Simulation(SimConfig(seed=seed, nodes=n, bugs=bugs, profile=prof, clients=4)).run()
