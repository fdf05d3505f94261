"""The Raft consensus state machine: pure, synchronous and deterministic.

Modelled on etcd-io/raft. The core never touches a clock, a disk or a socket. The
driver feeds it `tick()`, `step(message)` and client calls (`propose`, `read_index`,
`propose_conf_change`, `transfer_leadership`), then drains its output with `ready()`
and acknowledges it with `advance(ready)`.

The Ready contract, which every driver must follow in this order:

0. `ready.early_messages` may be sent at once, before persisting: they are a
   leader's appends and heartbeats (and forwarded requests), which promise nothing
   about this node's unpersisted state -- the leader counts itself toward a quorum
   only after `advance` reports its entries durable, and its term was made durable
   when it campaigned. This lets the leader's fsync overlap the followers' (etcd-io/
   raft: "writing to the leader's disk in parallel").
1. Persist `ready.snapshot`, then `ready.entries`, then `ready.hard_state`
   (one write, fsynced when `ready.must_sync`).
2. Only then send `ready.messages`: votes and append acknowledgements in them promise
   state that must already be durable.
3. Apply `ready.committed_entries` in order, and serve `ready.read_states` once the
   applied index reaches their index.
4. Call `advance(ready)`.

Role changes swap the `_step_role` and `_tick_fn` functions, as etcd's `becomeX` do,
so each role's behaviour reads as one function with a branch per message type.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from raftkv.raft import quorum
from raftkv.raft.confchange import apply_conf_change
from raftkv.raft.log import RaftLog
from raftkv.raft.messages import (
    NONE,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMeta,
)
from raftkv.raft.progress import Inflights, Progress, ProgressState
from raftkv.raft.readonly import ReadOnly
from raftkv.raft.storage import CompactedError, LogStorage, UnavailableError

MT = MessageType
TRANSFER_CONTEXT = b"transfer"

# Planted bugs, enabled only through Config.bugs, so the simulator's checkers can be
# shown to catch real Raft mistakes. Never set in production code paths.
PLANTED_BUGS = frozenset(
    {
        "commit_old_term",  # count replicas of an earlier-term entry (Figure 8)
        "vote_no_log_check",  # grant votes without the up-to-date-log check (5.4.1)
        "read_no_quorum",  # leader serves ReadIndex without a heartbeat round
        "double_vote",  # grant a second vote in the same term
        "truncate_on_append",  # follower truncates on stale/duplicate appends
        "read_before_noop",  # new leader serves ReadIndex before its no-op commits
        "accept_stale_term",  # appends/heartbeats/snapshots from a deposed leader obeyed
    }
)


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class ProposalDropped(Exception):
    """The proposal was definitely not appended (no leader, transfer in progress...)."""


@dataclass
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    applied: int = 0  # the state machine's applied index at start (restart recovery)
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 512
    max_inflight_bytes: int = 32 << 20
    pre_vote: bool = True
    check_quorum: bool = True
    bugs: frozenset[str] = frozenset()

    def validate(self) -> None:
        if self.id == NONE:
            raise ValueError("node id must be non-zero")
        if self.heartbeat_tick <= 0 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 0 < heartbeat_tick < election_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")
        unknown = self.bugs - PLANTED_BUGS
        if unknown:
            raise ValueError(f"unknown planted bugs: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state the driver may want to observe (not persisted)."""

    lead: int
    role: Role


@dataclass(frozen=True)
class Ready:
    soft_state: SoftState
    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]  # send only after persisting
    read_states: tuple[ReadState, ...]
    must_sync: bool
    early_messages: tuple[Message, ...] = ()  # may be sent before persisting


# Messages that never promise this node's durable state (see the contract, step 0).
EARLY_TYPES = frozenset(
    {
        MessageType.APP,
        MessageType.HEARTBEAT,
        MessageType.SNAP,
        MessageType.TIMEOUT_NOW,
        MessageType.PROPOSE,
        MessageType.READ_INDEX,
    }
)


@dataclass
class _Counters:
    """Cheap statistics for tests and metrics."""

    elections: int = 0
    appends_sent: int = 0
    snapshots_sent: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Raft:
    def __init__(self, config: Config, storage: LogStorage, rng: random.Random) -> None:
        config.validate()
        self.id = config.id
        self.cfg = config
        self.rng = rng
        self.bugs = config.bugs
        self.log = RaftLog(storage)
        hs, cs = storage.initial_state()
        self.conf = cs
        self.term = hs.term
        self.vote = hs.vote
        if hs.commit:
            self.log.commit_to(hs.commit)
        if config.applied:
            self.log.applied_to(config.applied)
        self.lead = NONE
        self.role = Role.FOLLOWER
        self.prs: dict[int, Progress] = {}
        self.votes: dict[int, bool] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.read_only = ReadOnly()
        self.pending_read_index: list[Message] = []
        self.pending_conf_index = 0
        self.lead_transferee = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self.stats = _Counters()
        self._bcast_pending = False  # an append broadcast is due at the next ready()
        self._step_role: Callable[[Message], None] = self._step_follower
        self._tick_fn: Callable[[], None] = self._tick_election
        self._prev_hard = HardState(self.term, self.vote, self.log.committed)
        self._ready_outstanding: Ready | None = None
        self._rebuild_progress()
        self.become_follower(self.term, NONE)

    # ======================================================================
    # Public API
    # ======================================================================
    def tick(self) -> None:
        self._tick_fn()

    def step(self, m: Message) -> None:
        """Feed a message from a peer (or a local HUP/SNAP_STATUS) into the core."""
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == TRANSFER_CONTEXT
                in_lease = (
                    self.cfg.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.cfg.election_tick
                )
                if not force and in_lease:
                    # We heard from a live leader within the election timeout: this
                    # candidate is disruptive (dissertation 4.2.3). Ignore it.
                    return
            if m.type == MT.PRE_VOTE or (m.type == MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if "accept_stale_term" in self.bugs and m.type in (MT.APP, MT.HEARTBEAT, MT.SNAP):
                # PLANTED BUG: a deposed leader's messages are handled as if current
                # (its entries may overwrite ones committed in a later term).
                self._step_role(m)
                return
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (
                MT.HEARTBEAT,
                MT.APP,
            ):
                # A stale leader cut off by a partition: tell it our term so it steps
                # down (otherwise pre-vote would keep us from ever raising its term).
                self._send(Message(MT.APP_RESP, to=m.frm))
            elif m.type == MT.PRE_VOTE:
                self._send(Message(MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return

        if m.type == MT.HUP:
            self._hup(transfer=False)
        elif m.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        else:
            self._step_role(m)

    def propose(self, data: bytes) -> None:
        """Propose a normal entry. Raises ProposalDropped if it cannot be appended."""
        self.step(Message(MT.PROPOSE, frm=self.id, entries=(Entry(0, 0, EntryType.NORMAL, data),)))

    def propose_conf_change(self, cc: ConfChange) -> None:
        entry = Entry(0, 0, EntryType.CONF_CHANGE, cc.encode())
        self.step(Message(MT.PROPOSE, frm=self.id, entries=(entry,)))

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point; answered later as a ReadState."""
        if not context:
            raise ValueError("read_index needs a non-empty context")
        self.step(Message(MT.READ_INDEX, frm=self.id, entries=(Entry(0, 0, data=context),)))

    def transfer_leadership(self, to: int) -> None:
        self.step(Message(MT.TRANSFER_LEADER, frm=to))

    def report_snapshot(self, to: int, failed: bool) -> None:
        """The transport finished (or gave up) streaming a snapshot to `to`."""
        self.step(Message(MT.SNAP_STATUS, frm=to, reject=failed))

    def campaign(self) -> None:
        """Start an election now (as if the election timeout had fired)."""
        self.step(Message(MT.HUP))

    @property
    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    @property
    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def has_ready(self) -> bool:
        if self._ready_outstanding is not None:
            return False
        return bool(
            self._bcast_pending
            or self.msgs
            or self.read_states
            or self.log.unstable.entries
            or self.log.unstable.snapshot
            or self.hard_state != self._prev_hard
            or self.log.has_next_committed_entries()
        )

    def ready(self) -> Ready:
        """Everything the driver must persist, send and apply now (see module doc)."""
        if self._ready_outstanding is not None:
            raise RuntimeError("ready() called again before advance()")
        if self._bcast_pending:
            # Appends are coalesced: every proposal and commit advance since the last
            # Ready goes out as one append per follower, not one each.
            self._bcast_pending = False
            if self.role == Role.LEADER:
                self._bcast_append()
        hs = self.hard_state
        hard = hs if hs != self._prev_hard else None
        entries = tuple(self.log.unstable.entries)
        must_sync = bool(entries) or (
            hard is not None
            and (hard.term != self._prev_hard.term or hard.vote != self._prev_hard.vote)
        )
        early = tuple(m for m in self.msgs if m.type in EARLY_TYPES)
        late = (
            tuple(m for m in self.msgs if m.type not in EARLY_TYPES) if early else tuple(self.msgs)
        )
        rd = Ready(
            soft_state=self.soft_state,
            hard_state=hard,
            entries=entries,
            snapshot=self.log.unstable.snapshot,
            committed_entries=tuple(self.log.next_committed_entries(self.cfg.max_size_per_msg)),
            messages=late,
            read_states=tuple(self.read_states),
            must_sync=must_sync or self.log.unstable.snapshot is not None,
            early_messages=early,
        )
        self.msgs = []
        self.read_states = []
        self._ready_outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted, sent and applied everything in `rd`."""
        if rd is not self._ready_outstanding:
            raise RuntimeError("advance() must be given the Ready returned by ready()")
        self._ready_outstanding = None
        if rd.hard_state is not None:
            self._prev_hard = rd.hard_state
        if rd.snapshot is not None:
            self.log.stable_snap_to(rd.snapshot.meta.index)
            self.log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        if rd.committed_entries:
            for e in rd.committed_entries:
                if e.type == EntryType.CONF_CHANGE:
                    self._apply_conf_change(ConfChange.decode(e.data))
            self.log.applied_to(rd.committed_entries[-1].index)
        if self.role == Role.LEADER and self.id in self.prs:
            # The leader counts itself towards a quorum only for entries it has
            # persisted: acknowledging before fsync can lose committed writes.
            if self.prs[self.id].maybe_update(self.log.persisted) and self._maybe_commit():
                self._bcast_pending = True

    # ======================================================================
    # Roles
    # ======================================================================
    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.cfg.election_tick + self.rng.randrange(
            self.cfg.election_tick
        )
        self.lead_transferee = NONE
        self.votes = {}
        self._bcast_pending = False
        self._rebuild_progress()
        self.pending_conf_index = 0
        self.read_only.clear()
        self.pending_read_index = []

    def _rebuild_progress(self) -> None:
        last = self.log.last_index()
        self.prs = {}
        for nid in sorted(self.conf.all_nodes()):
            self.prs[nid] = self._new_progress(nid, last)

    def _new_progress(self, nid: int, last: int) -> Progress:
        pr = Progress(
            match=0,
            next=last + 1,
            inflights=Inflights(self.cfg.max_inflight_msgs, self.cfg.max_inflight_bytes),
            is_learner=nid in self.conf.learners,
        )
        if nid == self.id:
            pr.match = self.log.persisted
        return pr

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER
        self._step_role = self._step_follower
        self._tick_fn = self._tick_election

    def _become_pre_candidate(self) -> None:
        # Like a candidate, but the term does not move and no vote is cast, so a
        # node that cannot win does not disrupt the cluster (dissertation 9.6).
        self.votes = {}
        self.lead = NONE
        self.role = Role.PRE_CANDIDATE
        self._step_role = self._step_candidate
        self._tick_fn = self._tick_election

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self._step_role = self._step_candidate
        self._tick_fn = self._tick_election

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self._step_role = self._step_leader
        self._tick_fn = self._tick_heartbeat
        for pr in self.prs.values():
            pr.recent_active = True
        if self.id in self.prs:
            self.prs[self.id].become_replicate()
        # Conservatively assume the tail may hold an unapplied conf change.
        self.pending_conf_index = self.log.last_index()
        # A no-op of our own term: commits everything before it (5.4.2) and lets
        # ReadIndex know the commit index is current (dissertation 6.4).
        self._append_entries([Entry(0, 0)])
        self.stats.elections += 1
        self._bcast_pending = True

    def _promotable(self) -> bool:
        return self.id in self.conf.voters

    # ======================================================================
    # Ticks
    # ======================================================================
    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        for nid, pr in self.prs.items():
            if pr.state == ProgressState.SNAPSHOT and nid != self.id:
                pr.snapshot_ticks += 1
                if pr.snapshot_ticks > 2 * self.cfg.election_tick:
                    # The snapshot (or its acknowledgement) was lost: probe again.
                    pr.become_probe()
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                active = [n for n, pr in self.prs.items() if n == self.id or pr.recent_active]
                for nid, pr in self.prs.items():
                    if nid != self.id:
                        pr.recent_active = False
                if not quorum.has_quorum(self.conf.voters, active):
                    self.become_follower(self.term, NONE)
                    return
            if self.lead_transferee != NONE:
                self.lead_transferee = NONE  # transfer did not finish in time
        if self.role != Role.LEADER:
            return
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_pending_context() or b"")

    # ======================================================================
    # Elections
    # ======================================================================
    def _hup(self, transfer: bool) -> None:
        if self.role == Role.LEADER or not self._promotable():
            return
        if self._has_unapplied_conf_change():
            return  # the configuration we would campaign in is not settled yet
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        lo = max(self.log.applied + 1, self.log.first_index())
        if self.log.committed < lo:
            return False
        return any(
            e.type == EntryType.CONF_CHANGE for e in self.log.slice(lo, self.log.committed + 1)
        )

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MT.VOTE, self.term
        if self._poll(self.id, True) == quorum.VoteResult.WON:
            # Single-voter cluster: we win at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        ctx = TRANSFER_CONTEXT if transfer else b""
        for nid in sorted(self.conf.voters):
            if nid == self.id:
                continue
            self._send(
                Message(
                    vote_type,
                    to=nid,
                    term=term,
                    index=self.log.last_index(),
                    log_term=self.log.last_term(),
                    context=ctx,
                )
            )

    def _poll(self, nid: int, granted: bool) -> quorum.VoteResult:
        self.votes.setdefault(nid, granted)
        return quorum.vote_result(self.conf.voters, self.votes)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == MT.PRE_VOTE and m.term > self.term)
            or ("double_vote" in self.bugs and m.type == MT.VOTE)
        )
        up_to_date = "vote_no_log_check" in self.bugs or self.log.is_up_to_date(m.index, m.log_term)
        resp = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and up_to_date:
            # Reply in the candidate's term: for a pre-vote that is the future term,
            # which the pre-candidate needs to count it.
            self._send(Message(resp, to=m.frm, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, to=m.frm, term=self.term, reject=True))

    # ======================================================================
    # Per-role step functions
    # ======================================================================
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.PROPOSE:
            self._leader_propose(m)
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == MT.TRANSFER_LEADER:
            self._leader_transfer(m.frm)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == MT.APP_RESP:
            self._handle_append_response(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == ProgressState.REPLICATE and pr.inflights.full():
                pr.inflights.free_first()
            if pr.match < self.log.last_index():
                self._send_append(m.frm)
            if m.context:
                self._handle_read_ack(m)
        elif t == MT.SNAP_STATUS:
            if pr.state == ProgressState.SNAPSHOT:
                if m.reject:
                    pr.pending_snapshot = 0
                pr.become_probe()
                # Wait for a heartbeat response before probing again.
                pr.probe_sent = True

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = MT.PRE_VOTE_RESP if self.role == Role.PRE_CANDIDATE else MT.VOTE_RESP
        if t in (MT.PROPOSE, MT.READ_INDEX):
            self._drop(m, "no leader: election in progress")
        elif t in (MT.APP, MT.HEARTBEAT, MT.SNAP):
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
        elif t == my_resp:
            result = self._poll(m.frm, not m.reject)
            if result == quorum.VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
            elif result == quorum.VoteResult.LOST:
                self.become_follower(self.term, NONE)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in (MT.PROPOSE, MT.READ_INDEX):
            if self.lead == NONE:
                self._drop(m, "no leader")
            else:
                # Forward, keeping the original requester so the answer finds it.
                self._send(Message(t, to=self.lead, frm=m.frm or self.id, entries=m.entries))
        elif t == MT.APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t == MT.SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t == MT.TRANSFER_LEADER:
            if self.lead != NONE:
                self._send(Message(MT.TRANSFER_LEADER, to=self.lead, frm=m.frm))
        elif t == MT.TIMEOUT_NOW:
            if self._promotable():
                self._hup(transfer=True)
        elif t == MT.READ_INDEX_RESP:
            if m.entries:
                self.read_states.append(ReadState(m.index, m.entries[0].data))

    # ======================================================================
    # Leader: proposals, replication, reads, transfer
    # ======================================================================
    def _leader_propose(self, m: Message) -> None:
        if not m.entries:
            self._drop(m, "empty proposal")
            return
        if self.id not in self.prs:
            self._drop(m, "leader was removed from the configuration")
            return
        if self.lead_transferee != NONE:
            self._drop(m, "leadership transfer in progress")
            return
        ents = list(m.entries)
        for i, e in enumerate(ents):
            if e.type != EntryType.CONF_CHANGE:
                continue
            cc = ConfChange.decode(e.data)
            reason = self._conf_change_refusal(cc)
            if reason:
                self._drop(m, reason)
                ents[i] = Entry(0, 0)  # forwarded: keep the batch's shape, as a no-op
            else:
                self.pending_conf_index = self.log.last_index() + i + 1
        self._append_entries(ents)
        self._bcast_pending = True

    def _conf_change_refusal(self, cc: ConfChange) -> str:
        if self.pending_conf_index > self.log.applied:
            return "a configuration change is already pending"
        if cc.type == ConfChangeType.ADD_LEARNER and cc.node_id in self.conf.voters:
            return "cannot demote a voter to a learner"
        if (
            cc.type in (ConfChangeType.REMOVE_NODE, ConfChangeType.UPDATE_NODE)
            and cc.node_id not in self.conf.all_nodes()
        ):
            return "node is not a member"
        if cc.type == ConfChangeType.REMOVE_NODE and self.conf.voters == {cc.node_id}:
            return "cannot remove the last voter"
        return ""

    def _append_entries(self, ents: list[Entry]) -> None:
        li = self.log.last_index()
        stamped = [Entry(self.term, li + 1 + i, e.type, e.data) for i, e in enumerate(ents)]
        self.log.append(stamped)
        # The leader's own match advances in advance(), once these are persisted.

    def _maybe_commit(self) -> bool:
        match = {nid: pr.match for nid, pr in self.prs.items()}
        mci = quorum.committed_index(self.conf.voters, match)
        committed = self.log.maybe_commit(
            mci, self.term, ignore_term="commit_old_term" in self.bugs
        )
        if committed and self._committed_in_current_term():
            self._release_pending_reads()
        return committed

    def _committed_in_current_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _bcast_append(self) -> None:
        for nid in sorted(self.prs):
            if nid == self.id:
                continue
            self._send_append(nid)
            # A follower in REPLICATE gets as many messages as its in-flight window
            # and the size cap allow: that is what pipelining means.
            pr = self.prs[nid]
            while pr.state == ProgressState.REPLICATE and self._send_append(
                nid, send_if_empty=False
            ):
                pass

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self.log.term(prev_index)
        try:
            if prev_term == 0 and prev_index > 0:
                raise CompactedError(prev_index)
            ents = self.log.entries_from(pr.next, self.cfg.max_size_per_msg)
        except (CompactedError, UnavailableError):
            return self._send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self._send(
            Message(
                MT.APP,
                to=to,
                index=prev_index,
                log_term=prev_term,
                entries=tuple(ents),
                commit=self.log.committed,
            )
        )
        self.stats.appends_sent += 1
        if ents:
            if pr.state == ProgressState.REPLICATE:
                last = ents[-1].index
                pr.optimistic_update(last)
                pr.inflights.add(last, sum(e.size() for e in ents))
            elif pr.state == ProgressState.PROBE:
                pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        snap = self.log.storage.snapshot()
        if snap.is_empty():
            return False  # not ready yet; the driver will make one
        self._send(Message(MT.SNAP, to=to, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        self.stats.snapshots_sent += 1
        return True

    def _handle_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            hint = m.reject_hint
            if m.log_term > 0:
                hint = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, hint):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(m.frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and pr.match >= pr.pending_snapshot:
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._bcast_pending = True
        elif old_paused:
            self._send_append(m.frm)
        while self._send_append(m.frm, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(Message(MT.TIMEOUT_NOW, to=m.frm))

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        for nid in sorted(self.prs):
            if nid == self.id:
                continue
            pr = self.prs[nid]
            commit = min(pr.match, self.log.committed)
            self._send(Message(MT.HEARTBEAT, to=nid, commit=commit, context=ctx))

    def _leader_read_index(self, m: Message) -> None:
        ctx = m.entries[0].data if m.entries else b""
        if len(self.conf.voters) == 1 and self.id in self.conf.voters:
            self._answer_read(m, self.log.committed, ctx)
            return
        if "read_no_quorum" in self.bugs:
            self._answer_read(m, self.log.committed, ctx)
            return
        if not self._committed_in_current_term() and "read_before_noop" not in self.bugs:
            # Our commit index may lag the previous leader's until our no-op
            # commits; hold the read until then (dissertation 6.4 step 1).
            self.pending_read_index.append(m)
            return
        self._start_read_round(m, ctx)

    def _start_read_round(self, m: Message, ctx: bytes) -> None:
        self.read_only.add_request(
            self.log.committed, Message(MT.READ_INDEX, frm=m.frm, context=ctx)
        )
        self.read_only.recv_ack(self.id, ctx)
        self._bcast_heartbeat(ctx)

    def _release_pending_reads(self) -> None:
        pending, self.pending_read_index = self.pending_read_index, []
        for m in pending:
            self._start_read_round(m, m.entries[0].data if m.entries else b"")

    def _handle_read_ack(self, m: Message) -> None:
        acks = self.read_only.recv_ack(m.frm, m.context)
        if acks is None or not quorum.has_quorum(self.conf.voters, acks):
            return
        for status in self.read_only.advance(m.context):
            self._answer_read(status.request, status.index, status.request.context)

    def _answer_read(self, req: Message, index: int, ctx: bytes) -> None:
        if req.frm in (NONE, self.id):
            self.read_states.append(ReadState(index, ctx))
        else:
            self._send(
                Message(
                    MT.READ_INDEX_RESP, to=req.frm, index=index, entries=(Entry(0, 0, data=ctx),)
                )
            )

    def _leader_transfer(self, transferee: int) -> None:
        pr = self.prs.get(transferee)
        if pr is None or pr.is_learner or transferee == self.id:
            return
        if self.lead_transferee == transferee:
            return
        self.lead_transferee = transferee
        self.election_elapsed = 0  # the transfer must finish within an election timeout
        if pr.match == self.log.last_index():
            self._send(Message(MT.TIMEOUT_NOW, to=transferee))
        else:
            self._send_append(transferee)

    # ======================================================================
    # Follower: appends, heartbeats, snapshots
    # ======================================================================
    def _handle_append(self, m: Message) -> None:
        if m.index < self.log.committed:
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))
            return
        conflict = (
            self.log.find_conflict(m.entries) if self.log.match_term(m.index, m.log_term) else 0
        )
        if conflict and conflict <= self.log.last_index():
            # Entries from `conflict` on are about to be replaced: acks for them that
            # are still waiting in this batch would promise entries we no longer have.
            self._forget_acks_from(conflict)
        last_new = self.log.maybe_append(
            m.index,
            m.log_term,
            m.commit,
            m.entries,
            truncate_always="truncate_on_append" in self.bugs,
        )
        if last_new is not None:
            self._send(Message(MT.APP_RESP, to=m.frm, index=last_new))
            return
        hint_index = min(m.index, self.log.last_index())
        hint_index = self.log.find_conflict_by_term(hint_index, m.log_term)
        self._send(
            Message(
                MT.APP_RESP,
                to=m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=self.log.term(hint_index),
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(min(m.commit, self.log.last_index()))
        self._send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None:
            return
        if self._restore(snap):
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self._send(Message(MT.APP_RESP, to=m.frm, index=self.log.committed))

    def _restore(self, snap: Snapshot) -> bool:
        meta: SnapshotMeta = snap.meta
        if meta.index <= self.log.committed:
            return False
        if self.log.match_term(meta.index, meta.term):
            # We already have the snapshot's entries: just fast-forward commit.
            self.log.commit_to(meta.index)
            return False
        self._forget_acks_from(meta.index + 1)
        self.log.restore(snap)
        self.conf = meta.conf_state
        self._rebuild_progress()
        return True

    # ======================================================================
    # Membership
    # ======================================================================
    def _apply_conf_change(self, cc: ConfChange) -> None:
        self.conf = apply_conf_change(self.conf, cc)
        last = self.log.last_index()
        for nid in sorted(self.conf.all_nodes()):
            if nid not in self.prs:
                self.prs[nid] = self._new_progress(nid, last)
                if self.role == Role.LEADER:
                    self.prs[nid].recent_active = True
            self.prs[nid].is_learner = nid in self.conf.learners
        for nid in list(self.prs):
            if nid not in self.conf.all_nodes():
                del self.prs[nid]
        if self.role != Role.LEADER:
            return
        if self.id not in self.conf.voters:
            # We were removed (or never a voter): step aside; the rest elect anew.
            self.become_follower(self.term, NONE)
            return
        if self.lead_transferee != NONE and self.lead_transferee not in self.conf.voters:
            self.lead_transferee = NONE
        # Fewer voters can mean a smaller quorum: entries may now be committed; and
        # a new member should hear from us now, not at the next heartbeat.
        self._maybe_commit()
        self._bcast_pending = True

    # ======================================================================
    # Output
    # ======================================================================
    def _forget_acks_from(self, index: int) -> None:
        """Withdraw unsent append acks covering entries at or after `index`.

        They were true when made, but the entries are being replaced in this same
        batch, so by the time the batch is persisted the promise would be false (the
        old leader could count a replica that no longer exists). Dropping a message
        is always safe in Raft."""
        self.msgs = [
            m
            for m in self.msgs
            if not (m.type == MT.APP_RESP and not m.reject and m.index >= index)
        ]

    def _drop(self, m: Message, reason: str) -> None:
        """Refuse a request. Only a local caller hears about it: a peer's forwarded
        request is dropped silently (its own timeout covers it), because raising
        while stepping a peer message would take the driver down."""
        if m.frm in (NONE, self.id):
            raise ProposalDropped(reason)

    def _send(self, m: Message) -> None:
        # Every message reaching here was just built by the core and has not escaped
        # yet, so stamping sender and term in place is safe -- and far cheaper than
        # copying a frozen dataclass on the hot path.
        if m.frm == NONE:
            object.__setattr__(m, "frm", self.id)
        if m.term == 0 and m.type not in (MT.PROPOSE, MT.READ_INDEX, MT.TRANSFER_LEADER):
            object.__setattr__(m, "term", self.term)
        self.msgs.append(m)


def bootstrap(voters: list[int]) -> tuple[list[Entry], HardState, ConfState]:
    """The initial log of a brand-new cluster, identical on every founding member.

    Each voter is added by a committed conf-change entry at term 1, as etcd does, so
    a node that joins later learns the founding configuration by replaying the log.
    """
    entries = [
        Entry(1, i + 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, nid).encode())
        for i, nid in enumerate(sorted(voters))
    ]
    return entries, HardState(term=1, vote=NONE, commit=len(entries)), ConfState(frozenset(voters))
