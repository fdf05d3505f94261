"""Membership mechanics on a member: applying conf changes, and the leader-side steps
of adding, promoting and removing members and handing over leadership.

The meaning of each operation (validation, forwarding to the leader, the answer)
lives in the service layer (service/cluster.py); these functions are what only a
node can do: propose conf changes to its core, read its replication progress, and
wait for the change to apply (on applied-index waiters, never by polling).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from raftkv.errors import (
    BadTransferee,
    ConfChangeRefused,
    LearnerNotReady,
    MemberExists,
    MemberNotFound,
    NotLearner,
    Unavailable,
    Why,
)
from raftkv.node.membership import Member, MembershipRecord, encode_context
from raftkv.raft import ProposalDropped, Role
from raftkv.raft.messages import ConfChange, ConfChangeType
from raftkv.storage import commands as cmds
from raftkv.transport import tcp

if TYPE_CHECKING:
    from raftkv.node.node import Node

# A learner whose match index is further than this behind the leader's last index is
# not promoted (etcd's "learner not ready"): as a voter it would stall the quorum.
LEARNER_MAX_LAG = 1000


# --- applying (every member) ---------------------------------------------------------


def on_conf_change_applied(node: Node, cc: ConfChange) -> None:
    """Mirror an applied conf change into the membership and the transport."""
    change = node.membership.apply(cc)
    if change.added is not None and change.added.id != node.id:
        node.transport.add_peer(tcp.PeerAddr(change.added.id, *change.added.peer_host_port))
    if change.removed_id and change.removed_id != node.id:
        node.transport.remove_peer(change.removed_id)
    if change.self_removed:
        _removed(node)


def adopt(node: Node, rec: MembershipRecord) -> None:
    """Take the membership restored from a snapshot: dial new members, drop gone ones."""
    new, gone = node.membership.adopt(rec)
    for m in new:
        node.transport.add_peer(tcp.PeerAddr(m.id, *m.peer_host_port))
    for nid in gone:
        node.transport.remove_peer(nid)
    if node.membership.removed:
        _removed(node)


def _removed(node: Node) -> None:
    node.log.warning("this member was removed from the cluster: exiting")
    if node.on_removed is not None:
        node.on_removed()


# --- leader-side operations ----------------------------------------------------------


def _require_leader(node: Node) -> None:
    if node.role != Role.LEADER:
        raise Unavailable(Why.LEADER_CHANGED)


async def _change(node: Node, cc: ConfChange) -> None:
    """Propose `cc` on the leader and wait until it has applied here.

    One change at a time: while an earlier one (or a new leader's first entries, which
    a conf change must not overtake) is still unapplied, wait for it within the request
    timeout instead of refusing at once."""
    _require_leader(node)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + node.cfg.request_timeout
    while True:
        try:
            await node.propose_conf_change(cc)
            break
        except ProposalDropped as e:
            pending = node.raft.pending_conf_index
            left = deadline - loop.time()
            if pending <= node.raft.log.applied or left <= 0:
                raise ConfChangeRefused(str(e)) from None
            with contextlib.suppress(Unavailable):
                await node.wait_applied(pending, timeout=left)
            _require_leader(node)
    if node.role != Role.LEADER:
        raise Unavailable(Why.LEADER_CHANGED, proposed=True)
    index = node.raft.log.last_index()
    await node.wait_applied(index)


def _url_taken(node: Node, name: str, peer_url: str) -> None:
    for m in node.membership.members.values():
        if m.name == name or m.peer_url == peer_url:
            raise MemberExists(m.name, m.peer_url)


async def add_learner(node: Node, name: str, peer_url: str, client_url: str | None) -> Member:
    _require_leader(node)
    _url_taken(node, name, peer_url)
    nid = node.membership.next_id()
    ctx = encode_context(name, peer_url, client_url)
    await _change(node, ConfChange(ConfChangeType.ADD_LEARNER, nid, ctx))
    m = node.membership.get(nid)
    if m is None:
        raise Unavailable(Why.LEADER_CHANGED, proposed=True)
    return m


def member(node: Node, nid: int) -> Member:
    m = node.membership.get(nid)
    if m is not None:
        return m
    if nid in node.membership.conf_state.all_nodes():
        return Member(nid, f"member-{nid}", "")
    raise MemberNotFound(nid)


async def promote(node: Node, nid: int) -> Member:
    _require_leader(node)
    m = member(node, nid)
    if node.membership.is_voter(nid):
        raise NotLearner(nid)
    pr = node.raft.prs.get(nid)
    last = node.raft.log.last_index()
    if pr is None or pr.match < last - LEARNER_MAX_LAG:
        raise LearnerNotReady(nid, pr.match if pr else 0, last)
    await _change(node, ConfChange(ConfChangeType.ADD_NODE, nid))
    if not node.membership.is_voter(nid):
        raise Unavailable(Why.LEADER_CHANGED, proposed=True)
    return m


async def remove(node: Node, nid: int) -> Member:
    _require_leader(node)
    m = member(node, nid)
    await _change(node, ConfChange(ConfChangeType.REMOVE_NODE, nid))
    if nid in node.membership.conf_state.all_nodes():
        raise Unavailable(Why.LEADER_CHANGED, proposed=True)
    return m


async def transfer_leader(node: Node, to: int) -> int:
    """Hand leadership to voter `to`; the new leader's id once it has taken over."""
    _require_leader(node)
    if not node.membership.is_voter(to):
        raise BadTransferee(to)
    if to == node.id:
        return to
    node.raft.transfer_leadership(to)
    node.wake()
    deadline = (
        asyncio.get_running_loop().time() + 3 * node.cfg.election_tick * node.cfg.tick_seconds
    )
    while node.leader != to:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise Unavailable(Why.TIMEOUT, proposed=True)
        with contextlib.suppress(TimeoutError):
            await node.wait_role_change(left)
    return to


async def hand_off_leadership(node: Node) -> None:
    """On a graceful stop: transfer to the most caught-up connected voter, if any."""
    best = [
        (pr.match, nid)
        for nid, pr in node.raft.prs.items()
        if nid != node.id and node.membership.is_voter(nid) and node.transport.connected(nid)
    ]
    if not best:
        return
    _, target = max(best)
    node.log.info("transferring leadership", to=target)
    with contextlib.suppress(Unavailable, BadTransferee):
        await transfer_leader(node, target)


# --- attributes and alarms -----------------------------------------------------------


async def publish_attributes(node: Node) -> None:
    """Publish this member's advertised client URL through Raft (etcd's "publish"), so
    every member lists it; retried until the membership shows it."""
    while True:
        me = node.membership.get(node.id)
        if me is None or me.client_url == node.cfg.client_url or node.membership.removed:
            return
        if not node.leader:
            await asyncio.sleep(0.1)
            continue
        ctx = encode_context(me.name, me.peer_url, node.cfg.client_url)
        with contextlib.suppress(ProposalDropped, Unavailable):
            await node.propose_conf_change(ConfChange(ConfChangeType.UPDATE_NODE, node.id, ctx))
        await asyncio.sleep(0.3)  # one conf change at a time: a refused one is retried


def raise_nospace_alarm(node: Node) -> None:
    """The leader saw a write refused for lack of quota: raise NOSPACE cluster-wide
    (replicated, persisted) until an operator disarms it, as etcd does."""
    if node.mvcc.nospace:
        return
    node.log.warning(
        "backend quota reached: raising the NOSPACE alarm",
        quota=node.mvcc.quota_bytes,
        hint="compact, defragment, then disarm the alarm (etcdctl alarm disarm)",
    )
    alarm = cmds.Alarm(node.id, cmds.AlarmType.NOSPACE, True)
    node.spawn(_quietly(node, alarm))


async def _quietly(node: Node, cmd: cmds.Command) -> None:
    with contextlib.suppress(Unavailable):
        await node.propose(cmd)
