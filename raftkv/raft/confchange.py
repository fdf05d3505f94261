"""Single-server membership changes as a pure function over ConfState.

The core and the state machine both call this when a conf-change entry is applied,
so they agree on membership without sharing mutable state.
"""

from __future__ import annotations

from raftkv.raft.messages import ConfChange, ConfChangeType, ConfState


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    voters, learners = set(cs.voters), set(cs.learners)
    nid = cc.node_id
    if cc.type == ConfChangeType.ADD_NODE:  # add a voter, or promote a learner
        voters.add(nid)
        learners.discard(nid)
    elif cc.type == ConfChangeType.ADD_LEARNER:
        if nid not in voters:  # demotion is refused at proposal time; stay idempotent
            learners.add(nid)
    elif cc.type == ConfChangeType.REMOVE_NODE:
        voters.discard(nid)
        learners.discard(nid)
    # UPDATE_NODE changes only a member's attributes, which the membership record keeps.
    return ConfState(frozenset(voters), frozenset(learners))
