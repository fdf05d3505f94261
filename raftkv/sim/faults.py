"""The simulator's nemesis: which fault strikes when, drawn from the seed.

Crashes, SIGSTOP-like pauses, slow clocks, restarts, partitions of every shape, lossy,
duplicating and reordering links, membership changes under traffic, and kills of
leaders whose tail is not yet committed. Mixed into `Simulation` (cluster.py), whose
state it changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkv.raft import ConfChange, ConfChangeType, MemoryStorage, ProposalDropped

if TYPE_CHECKING:
    from raftkv.sim.cluster import Simulation

UNITS_PER_TICK = 10


class FaultInjector:
    """The fault half of a Simulation."""

    def _inject_faults(self: Simulation) -> None:
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

    def _partition(self: Simulation) -> None:
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

    def _membership_change(self: Simulation) -> None:
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
            from raftkv.sim.cluster import SimNode  # the module that mixes this in

            node = SimNode(cc.node_id, MemoryStorage())
            self.nodes[cc.node_id] = node
            self._start(node)
        elif cc.type == ConfChangeType.REMOVE_NODE:
            self.pending_removal.add(cc.node_id)
        self.result.conf_changes += 1
        self.result.faults[f"member:{cc.type.name.lower()}"] += 1
        self._log(f"propose {cc.type.name} n{cc.node_id} via n{leader.id}")

    def _retire_removed(self: Simulation) -> None:
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

    def _kill_fresh_leader(self: Simulation) -> None:
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
