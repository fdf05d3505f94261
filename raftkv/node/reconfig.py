"""Runtime membership changes: add a learner, promote, remove, transfer leadership.

The member's name and URLs travel inside the ConfChange context, so every node learns
a new peer's address from the replicated log (not from a side channel) and records it
in members.json when the entry applies. All operations run on the leader: it is the
only node that knows how far a learner has caught up and whether a change is pending.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from raftkv.node.membership import Member, MembershipRecord, save_members
from raftkv.raft import ProposalDropped, Role
from raftkv.raft.messages import ConfChange, ConfChangeType
from raftkv.transport import tcp

if TYPE_CHECKING:
    from raftkv.node.node import Node

# A learner whose match index is further than this behind the leader's last index is
# not promoted (etcd's "learner not ready"): as a voter it would stall the quorum.
LEARNER_MAX_LAG = 1000


class ReconfigError(Exception):
    """A refused membership request; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def encode_context(name: str, peer_url: str, client_url: str | None) -> bytes:
    return json.dumps({"name": name, "peer_url": peer_url, "client_url": client_url}).encode()


def decode_context(raw: bytes) -> dict[str, Any] | None:
    """The member described by a ConfChange context; None for bootstrap entries."""
    if not raw:
        return None
    try:
        ctx = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(ctx, dict) or not ctx.get("name") or not ctx.get("peer_url"):
        return None
    return ctx


def on_conf_change_applied(node: Node, cc: ConfChange) -> None:
    """Mirror an applied conf change into members.json, the transport and node state.

    Called from the Ready loop for every applied conf-change entry (also on replay
    after a restart, so it is idempotent)."""
    members = {m.id: m for m in node.members}
    ctx = decode_context(cc.context)
    if cc.type in (ConfChangeType.ADD_LEARNER, ConfChangeType.ADD_NODE) and ctx is not None:
        if cc.node_id not in members:
            m = Member(cc.node_id, str(ctx["name"]), str(ctx["peer_url"]).rstrip("/"))
            members[m.id] = m
            if ctx.get("client_url"):
                node.client_urls.setdefault(m.id, str(ctx["client_url"]))
            if m.id != node.id:
                _add_peer(node, m)
    elif cc.type == ConfChangeType.REMOVE_NODE:
        members.pop(cc.node_id, None)
        node.client_urls.pop(cc.node_id, None)
        if cc.node_id == node.id:
            _mark_removed(node)
        else:
            _remove_peer(node, cc.node_id)
    new = sorted(members.values(), key=lambda m: m.id)
    if new != node.members:
        node.members = new
        save_members(node.cfg.data_dir, new)


def _add_peer(node: Node, m: Member) -> None:
    node.transport.add_peer(tcp.PeerAddr(m.id, *m.peer_host_port))


def _remove_peer(node: Node, nid: int) -> None:
    node.transport.remove_peer(nid)


def adopt_membership(node: Node, rec: MembershipRecord) -> None:
    """Take the membership restored from a snapshot: dial members added while we
    were behind, forget removed ones, and persist the list (members.json)."""
    node.conf_state = rec.conf_state
    node.max_member_id = max(node.max_member_id, rec.max_id)
    if not rec.members:
        return  # an older record without addresses: keep what we know
    current = {m.id: m for m in node.members}
    wanted = {m.id: m for m in rec.members}
    for nid, m in wanted.items():
        if nid != node.id and nid not in current:
            _add_peer(node, m)
    for nid in current:
        if nid not in wanted and nid != node.id:
            _remove_peer(node, nid)
            node.client_urls.pop(nid, None)
    for nid, url in rec.client_urls.items():
        node.client_urls.setdefault(nid, url)
    new = sorted(wanted.values(), key=lambda m: m.id)
    if node.id not in wanted:
        _mark_removed(node)
    if new != node.members:
        node.members = new
        save_members(node.cfg.data_dir, new)


def _mark_removed(node: Node) -> None:
    if node.removed:
        return
    node.removed = True
    node.log.warning("this member was removed from the cluster; it stops serving")
    if node.on_removed is not None:
        node.on_removed()


def next_member_id(node: Node) -> int:
    """Never reuse an id, even of a removed member: the record keeps the highest."""
    known = {m.id for m in node.members} | set(node.conf_state.all_nodes())
    return max(max(known, default=0), node.max_member_id) + 1


def _require_leader(node: Node) -> None:
    if node.role != Role.LEADER:
        raise ReconfigError(503, "not_leader", "membership changes must run on the leader")


async def _propose_and_wait(node: Node, cc: ConfChange, done: Any) -> None:
    """Propose `cc` and wait until `done()` holds on this node (the change applied)."""
    try:
        node.raft.propose_conf_change(cc)
    except ProposalDropped as e:
        status = 409 if "pending" in str(e) or "demote" in str(e) else 412
        raise ReconfigError(status, "conf_change_refused", str(e)) from e
    node._wake.set()
    deadline = time.monotonic() + node.cfg.request_timeout
    while not done():
        if time.monotonic() > deadline:
            raise ReconfigError(503, "timeout", "the membership change did not apply in time")
        await asyncio.sleep(0.02)


def _check_url(name: str, url: str) -> str:
    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname or not u.port:
        raise ReconfigError(400, "bad_request", f"{name} must look like http://host:port")
    return url.rstrip("/")


async def add_learner(node: Node, name: str, peer_url: str, client_url: str | None) -> Member:
    _require_leader(node)
    if not name:
        raise ReconfigError(400, "bad_request", "name must not be empty")
    peer_url = _check_url("peer_url", peer_url)
    if client_url is not None:
        client_url = _check_url("client_url", client_url)
    for m in node.members:
        if m.name == name or m.peer_url == peer_url:
            raise ReconfigError(409, "member_exists", f"member {m.name} ({m.peer_url}) exists")
    nid = next_member_id(node)
    cc = ConfChange(ConfChangeType.ADD_LEARNER, nid, encode_context(name, peer_url, client_url))
    await _propose_and_wait(node, cc, lambda: nid in node.conf_state.learners)
    return next(m for m in node.members if m.id == nid)


def _member(node: Node, nid: int) -> Member:
    for m in node.members:
        if m.id == nid:
            return m
    if nid in node.conf_state.all_nodes():
        return Member(nid, f"member-{nid}", "")
    raise ReconfigError(404, "member_not_found", f"member {nid} not found")


async def promote(node: Node, nid: int) -> Member:
    _require_leader(node)
    m = _member(node, nid)
    if nid in node.conf_state.voters:
        raise ReconfigError(412, "not_learner", f"member {nid} is already a voter")
    pr = node.raft.prs.get(nid)
    last = node.raft.log.last_index()
    if pr is None or pr.match < last - LEARNER_MAX_LAG:
        match = pr.match if pr else 0
        raise ReconfigError(
            412,
            "learner_not_ready",
            f"learner {nid} is not in sync with the leader (match {match}, last {last})",
        )
    await _propose_and_wait(
        node, ConfChange(ConfChangeType.ADD_NODE, nid), lambda: nid in node.conf_state.voters
    )
    return m


async def remove(node: Node, nid: int) -> Member:
    _require_leader(node)
    m = _member(node, nid)
    await _propose_and_wait(
        node,
        ConfChange(ConfChangeType.REMOVE_NODE, nid),
        lambda: nid not in node.conf_state.all_nodes(),
    )
    return m


async def transfer_leader(node: Node, to: int) -> int:
    """Hand leadership to voter `to`; the new leader's id once it has taken over."""
    _require_leader(node)
    if to not in node.conf_state.voters:
        raise ReconfigError(412, "not_voter", f"member {to} is not a voter")
    if to == node.id:
        return to
    node.raft.transfer_leadership(to)
    node._wake.set()
    deadline = time.monotonic() + 3 * node.cfg.election_tick * node.cfg.tick_seconds
    while time.monotonic() < deadline:
        if node.leader == to:
            return to
        await asyncio.sleep(0.02)
    raise ReconfigError(503, "timeout", f"member {to} did not take over in time")
