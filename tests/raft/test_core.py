"""Scripted protocol tests for the Raft core. Each docstring names the section of
the Raft paper (Ongaro & Ousterhout 2014) or dissertation (Ongaro 2014) it checks."""

from __future__ import annotations

import random

import pytest

from raftkv.raft import (
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Message,
    MessageType,
    ProposalDropped,
    Raft,
    Role,
)
from raftkv.raft.progress import ProgressState

from .harness import Net

MT = MessageType


def test_single_node_elects_itself_and_commits() -> None:
    net = Net([1])
    net.tick_all(25)
    assert net.nodes[1].role == Role.LEADER
    net.nodes[1].propose(b"x")
    net.deliver()
    assert net.applied[1] == [b"x"]


def test_three_nodes_elect_one_leader_with_pre_vote() -> None:
    """Paper 5.2 / dissertation 9.6: pre-vote first, then a real election."""
    net = Net([1, 2, 3])
    net.elect(1)
    assert net.leader() == 1
    assert {r.lead for r in net.nodes.values()} == {1}
    assert {r.term for r in net.nodes.values()} == {2}
    pre_votes = [m for m in net.sent if m.type == MT.PRE_VOTE]
    assert pre_votes and all(m.term == 2 for m in pre_votes)


def test_randomized_timeouts_elect_a_leader_by_ticking() -> None:
    net = Net([1, 2, 3])
    net.tick_all(40)
    assert net.leader() is not None
    assert sum(r.role == Role.LEADER for r in net.nodes.values()) == 1


def test_commit_needs_a_persisted_majority() -> None:
    """Paper 5.3: an entry commits once a majority stored it (leader included)."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(2)
    net.cut(1, 3)
    net.nodes[1].propose(b"a")
    net.deliver()
    assert net.applied[1] == []  # alone: not committed
    net.heal()
    net.tick_all(2)
    assert net.applied[1] == [b"a"]
    assert net.applied[2] == [b"a"] and net.applied[3] == [b"a"]


def test_pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() -> None:
    """Dissertation 9.6: a partitioned node cannot raise its term by campaigning."""
    net = Net([1, 2, 3])
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    net.tick(3, 100)
    net.deliver()
    assert net.nodes[3].term == term
    net.heal()
    net.tick_all(3)
    assert net.leader() == 1 and net.nodes[1].term == term


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    """Dissertation 6.2: a leader that can't reach a majority steps down."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    for _ in range(2 * 10 + 1):
        net.tick(1)
        net.deliver()
    assert net.nodes[1].role == Role.FOLLOWER


def test_stale_leader_learns_new_term_from_app_resp() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.elect(2)
    # Followers that heard from n1 within the election timeout ignore n2 (lease).
    assert net.nodes[2].role != Role.LEADER
    for _ in range(25):
        net.tick(2)
        net.tick(3)
        net.deliver()
    new = 2 if net.nodes[2].role == Role.LEADER else 3
    assert net.nodes[new].role == Role.LEADER
    net.heal()
    net.tick_all(2)
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.nodes[1].term == net.nodes[new].term


def test_conflicting_uncommitted_suffix_is_overwritten() -> None:
    """Paper 5.3: the leader forces followers' logs to match its own."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    for i in range(5):
        net.nodes[1].propose(b"lost%d" % i)  # never committed
    net.deliver()
    for _ in range(25):
        net.tick(2)
        net.tick(3)
        net.deliver()
    new = 2 if net.nodes[2].role == Role.LEADER else 3
    net.nodes[new].propose(b"kept")
    net.deliver()
    net.heal()
    net.tick_all(3)
    for nid in (1, 2, 3):
        assert net.applied[nid] == [b"kept"]
    log1 = net.nodes[1].log
    assert all(b"lost" not in e.data for e in log1.slice(1, log1.last_index() + 1))


def test_fast_backtracking_uses_few_round_trips() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(200):
        net.nodes[1].propose(b"e%d" % i)
        net.deliver()
    net.sent.clear()
    net.heal()
    net.tick_all(3)
    rejects = [m for m in net.sent if m.type == MT.APP_RESP and m.reject and m.frm == 3]
    assert len(rejects) <= 2
    assert len(net.applied[3]) == 200


def test_leader_commits_old_term_entries_only_via_current_term() -> None:
    """Paper 5.4.2 / Figure 8: replica counting never commits an earlier-term entry."""

    def leader_with_old_entry(bugs: frozenset[str]) -> Raft:
        st = MemoryStorage()
        st.append([Entry(1, 1), Entry(2, 2)])
        st.set_hard_state(HardState(term=3, vote=0, commit=1))
        st.conf_state = ConfState(frozenset({1, 2, 3}))
        r = Raft(Config(id=1, bugs=bugs), st, random.Random(1))
        r.campaign()
        r.step(Message(MT.PRE_VOTE_RESP, to=1, frm=2, term=4))
        r.step(Message(MT.VOTE_RESP, to=1, frm=2, term=4))
        assert r.role == Role.LEADER and r.term == 4
        rd = r.ready()  # persist the no-op (index 3, term 4)
        st.append(rd.entries)
        r.advance(rd)
        # A follower acknowledges only index 2 (term 2): a majority now holds it.
        r.step(Message(MT.APP_RESP, to=1, frm=2, term=4, index=2))
        return r

    assert leader_with_old_entry(frozenset()).log.committed == 1
    assert leader_with_old_entry(frozenset({"commit_old_term"})).log.committed == 2


def test_vote_requires_up_to_date_log() -> None:
    """Paper 5.4.1: the election restriction."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.nodes[1].propose(b"a")
    net.deliver()
    net.heal()
    net.isolate(1)
    # n3 lacks entry "a": n2 must refuse it even though n1 is gone.
    net.nodes[3].campaign()
    net.deliver()
    assert net.nodes[3].role != Role.LEADER


def test_read_index_waits_for_a_heartbeat_quorum() -> None:
    """Dissertation 6.4: reads are released only after leadership is confirmed."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.nodes[1].read_index(b"r1")
    net.deliver()
    assert net.reads[1] == []
    net.heal()
    net.tick_all(1)
    assert [ctx for _, ctx in net.reads[1]] == [b"r1"]


def test_concurrent_reads_share_one_heartbeat_round() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.sent.clear()
    for i in range(10):
        net.nodes[1].read_index(b"r%d" % i)
    net.deliver()
    assert len(net.reads[1]) == 10
    heartbeats = [m for m in net.sent if m.type == MT.HEARTBEAT]
    assert len(heartbeats) <= 2 * 10  # one broadcast per call, not one per ack
    assert {i for i, _ in net.reads[1]} == {net.nodes[1].log.committed}


def test_new_leader_holds_reads_until_its_noop_commits() -> None:
    """Dissertation 6.4 step 1: a new leader's commit index may be stale until an
    entry of its own term commits."""
    net = Net([1, 2, 3])
    net.nodes[1].campaign()
    while net.nodes[1].role != Role.LEADER:
        net.flush()
        m = net.inbox.pop(0)
        net.nodes[m.to].step(m)
    net.isolate(1)
    net.inbox.clear()
    leader = net.nodes[1]
    assert leader.log.term(leader.log.committed) != leader.term
    leader.read_index(b"held")
    net.deliver()
    assert net.reads[1] == [] and leader.pending_read_index
    net.heal()
    net.tick_all(2)
    assert [ctx for _, ctx in net.reads[1]] == [b"held"]


def test_follower_read_index_is_forwarded_to_the_leader() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"a")
    net.deliver()
    net.nodes[3].read_index(b"f")
    net.deliver()
    assert net.reads[3] == [(net.nodes[1].log.committed, b"f")]
    assert net.reads[1] == []


def test_proposal_on_follower_is_forwarded() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[2].propose(b"via-follower")
    net.deliver()
    assert net.applied[1] == [b"via-follower"]


def test_proposal_without_leader_is_dropped() -> None:
    net = Net([1, 2, 3])
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"x")


def test_pipelining_respects_the_inflight_window_and_message_size() -> None:
    net = Net([1, 2, 3], max_inflight_msgs=2, max_size_per_msg=100)
    net.elect(1)
    net.nodes[1].propose(b"warm")
    net.deliver()
    assert net.nodes[1].prs[2].state == ProgressState.REPLICATE
    net.isolate(2)
    net.cut(1, 3)
    net.sent.clear()
    for i in range(10):
        net.nodes[1].propose(b"v" * 50 + b"%d" % i)
    net.flush()
    to2 = [m for m in net.sent if m.type == MT.APP and m.to == 2]
    assert len(to2) == 2  # window full: the rest waits for acknowledgements
    assert all(sum(e.size() for e in m.entries) <= 100 or len(m.entries) == 1 for m in to2)
    net.heal()
    net.tick_all(5)
    assert len(net.applied[2]) == 11


def _snapshot_and_compact(net: Net, nid: int) -> int:
    st = net.storages[nid]
    r = net.nodes[nid]
    applied = r.log.applied
    st.create_snapshot(applied, r.conf, b"state@%d" % applied)
    st.compact(applied)
    return applied


def test_lagging_follower_catches_up_by_snapshot() -> None:
    """Paper 7 / dissertation 5: InstallSnapshot for a follower behind the log."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.stop(3)
    for i in range(20):
        net.nodes[1].propose(b"e%d" % i)
        net.deliver()
    snap_index = _snapshot_and_compact(net, 1)
    net.start(3)
    net.tick_all(3)
    assert any(m.type == MT.SNAP and m.to == 3 for m in net.sent)
    assert net.storages[3].snapshot().meta.index == snap_index
    net.nodes[1].propose(b"after")
    net.deliver()
    assert net.applied[3][-1] == b"after"
    assert net.nodes[1].prs[3].state == ProgressState.REPLICATE


def test_membership_learner_promote_and_remove_leader() -> None:
    """Dissertation 4.1-4.2: one change at a time; learners catch up first."""
    net = Net([1, 2, 3])
    net.elect(1)
    net.nodes[1].propose(b"before")
    net.deliver()
    net.start(4, MemoryStorage())  # an empty node joining
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):  # one pending change at a time
        net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 5))
    net.deliver()
    net.tick_all(3)
    assert net.nodes[1].conf.learners == {4}
    assert net.applied[4] == [b"before"]  # caught up by replaying the log
    assert net.nodes[4].conf.voters == {1, 2, 3}  # learned the founders from the log
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    net.deliver()
    assert net.nodes[1].conf.voters == {1, 2, 3, 4}
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 1))
    net.deliver()
    assert net.nodes[2].conf.voters == {2, 3, 4}
    assert net.nodes[1].role == Role.FOLLOWER  # the removed leader stepped down
    net.stop(1)
    net.tick_all(40)
    new = net.leader()
    assert new in (2, 3, 4)
    net.nodes[new].propose(b"after")
    net.deliver()
    assert all(net.applied[n][-1] == b"after" for n in (2, 3, 4))


def test_learner_never_campaigns() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.start(4, MemoryStorage())
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.deliver()
    net.isolate(4)
    net.tick(4, 100)
    net.deliver()
    assert net.nodes[4].role == Role.FOLLOWER and net.nodes[4].term == net.nodes[1].term


def test_configuration_survives_restart() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.start(4, MemoryStorage())
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    net.deliver()
    _snapshot_and_compact(net, 2)
    net.stop(2)
    restarted = net.start(2)
    assert restarted.conf.learners == {4} and restarted.conf.voters == {1, 2, 3}


def test_leadership_transfer_with_timeout_now() -> None:
    """Dissertation 3.10."""
    net = Net([1, 2, 3])
    net.elect(1)
    term = net.nodes[1].term
    net.nodes[1].transfer_leadership(3)
    net.deliver()
    assert net.leader() == 3
    assert net.nodes[3].term == term + 1
    assert any(m.type == MT.TIMEOUT_NOW for m in net.sent)


def test_transfer_to_lagging_node_catches_it_up_first() -> None:
    net = Net([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.nodes[1].propose(b"e%d" % i)
    net.deliver()
    net.heal()
    net.nodes[1].transfer_leadership(3)
    with pytest.raises(ProposalDropped):  # no proposals while transferring
        net.nodes[1].propose(b"x")
    net.deliver()
    assert net.leader() == 3
    assert len(net.applied[3]) == 5


def test_ready_contract_is_enforced() -> None:
    net = Net([1, 2, 3])
    r = net.nodes[1]
    r.campaign()
    rd = r.ready()
    # A pre-vote round does not change the durable term.
    assert rd.hard_state is None or rd.hard_state.term == 1
    with pytest.raises(RuntimeError):
        r.ready()
    r.advance(rd)
    # Granting pre-votes makes n1 a candidate: its new term and self-vote come in
    # the same Ready as the VOTE messages and must be persisted first (must_sync).
    for frm in (2, 3):
        r.step(Message(MT.PRE_VOTE_RESP, to=1, frm=frm, term=2))
    rd = r.ready()
    assert rd.hard_state == HardState(term=2, vote=1, commit=3)
    assert rd.must_sync
    assert {m.type for m in rd.messages} == {MT.VOTE}


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        Config(id=0).validate()
    with pytest.raises(ValueError):
        Config(id=1, election_tick=1, heartbeat_tick=1).validate()
    with pytest.raises(ValueError):
        Config(id=1, bugs=frozenset({"nope"})).validate()


def test_ack_for_entries_replaced_in_the_same_batch_is_withdrawn() -> None:
    """Regression (found by the simulator's durability check): a follower acks
    entries 4-5 from a term-2 leader, then a term-3 leader's append replaces them
    before the batch is persisted. The stale ack must not go out, or the old
    leader could count a replica that no longer exists."""
    st = MemoryStorage()
    st.append([Entry(1, 1), Entry(1, 2), Entry(1, 3)])
    st.set_hard_state(HardState(term=1, vote=0, commit=3))
    st.conf_state = ConfState(frozenset({1, 2, 3}))
    r = Raft(Config(id=2, applied=3), st, random.Random(2))
    r.step(
        Message(
            MT.APP,
            to=2,
            frm=1,
            term=2,
            index=3,
            log_term=1,
            entries=(Entry(2, 4), Entry(2, 5)),
            commit=3,
        )
    )
    r.step(
        Message(MT.APP, to=2, frm=3, term=3, index=3, log_term=1, entries=(Entry(3, 4),), commit=3)
    )
    rd = r.ready()
    acks = [(m.to, m.term, m.index) for m in rd.messages if m.type == MT.APP_RESP]
    assert acks == [(3, 3, 4)]
    assert [(e.index, e.term) for e in rd.entries] == [(4, 3)]
