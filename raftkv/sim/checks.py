"""The simulator's checkers: Raft's safety properties after every step, and the
linearizability of the register history at the end.

Election safety, leader completeness, log matching, commit monotonicity and the
durability contract (no message promises state that is not persisted); each failure
raises a Violation through `Simulation._fail`. Mixed into `Simulation` (cluster.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkv.raft import Message, MessageType, Role
from raftkv.sim.history import check_register

if TYPE_CHECKING:
    from raftkv.sim.cluster import SimNode, Simulation

MT = MessageType


class SafetyChecks:
    """The checking half of a Simulation."""

    def _check_step(self: Simulation, full: bool) -> None:
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

    def _check_leader_completeness(self: Simulation, n: SimNode) -> None:
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

    def _check_log_matching(self: Simulation) -> None:
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

    def _check_durable_before_send(self: Simulation, n: SimNode, m: Message) -> None:
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

    def _check_linearizability(self: Simulation) -> None:
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
