"""/v3/cluster/member/* and /v3/maintenance/transfer-leadership over raftkv's
reconfiguration (raftkv.node.reconfig).

Changes run on the leader; a follower forwards them to the leader's native
/v1/members API and then waits until it has applied the change itself, so the member
list it answers with already reflects it (as etcd's does).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any
from urllib.parse import urlsplit

from raftkv.node import reconfig
from raftkv.server.etcd.errors import MSG_TIMEOUT, EtcdError, GrpcStatus
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, to_bool, to_int

MSG_MEMBER_NOT_FOUND = "etcdserver: member not found"
MSG_BAD_URLS = "etcdserver: given member URLs are invalid"
MSG_PEER_EXISTS = "etcdserver: Peer URLs already exists"
MSG_NOT_LEARNER = "etcdserver: can only promote a learner member"
MSG_NOT_READY = "etcdserver: can only promote a learner member which is in sync with leader"
MSG_BAD_TRANSFEREE = "etcdserver: bad leader transferee"


def members_body(gw: Gateway) -> list[dict[str, Any]]:
    n = gw.node
    out = []
    for m in n.members:
        one: dict[str, Any] = {"ID": str(gw.member_id(m.id)), "name": m.name}
        one["peerURLs"] = [m.peer_url]
        url = n.client_urls.get(m.id)
        if url:
            one["clientURLs"] = [url]
        if m.id in n.conf_state.learners:
            one["isLearner"] = True
        out.append(one)
    return out


async def member_list(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    return {"header": gw.header(0), "members": members_body(gw)}


def _raft_id(gw: Gateway, body: dict[str, Any], field: str = "ID") -> int:
    rid = gw.raft_id(to_int(body.get(field), field, unsigned=True))
    if rid is None:
        raise EtcdError(GrpcStatus.NOT_FOUND, MSG_MEMBER_NOT_FOUND)
    return rid


def _reconfig_error(status: int, code: str, message: str) -> EtcdError:
    if status == 404:
        return EtcdError(GrpcStatus.NOT_FOUND, MSG_MEMBER_NOT_FOUND)
    if code == "not_learner":
        return EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_NOT_LEARNER)
    if code == "learner_not_ready":
        return EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_NOT_READY)
    if code == "member_exists":
        return EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_PEER_EXISTS)
    if code == "not_voter":
        return EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_BAD_TRANSFEREE)
    if status in (409, 412):
        return EtcdError(GrpcStatus.FAILED_PRECONDITION, f"etcdserver: {message}")
    if status == 400:
        return EtcdError(GrpcStatus.INVALID_ARGUMENT, MSG_BAD_URLS)
    return EtcdError(GrpcStatus.UNAVAILABLE, MSG_TIMEOUT)


async def _on_leader(gw: Gateway, local: Any, method: str, path: str, body: Any = None) -> Any:
    """Run `local()` on the leader, else the equivalent native call on the leader."""
    if gw.is_leader:
        try:
            return await local()
        except reconfig.ReconfigError as e:
            raise _reconfig_error(e.status, e.code, e.message) from None
    status, answer = await gw.leader_call(method, path, body)
    if status >= 300:
        err = answer.get("error", {}) if isinstance(answer, dict) else {}
        raise _reconfig_error(status, err.get("code", ""), err.get("message", ""))
    return answer


async def _until(gw: Gateway, done: Any) -> None:
    deadline = time.monotonic() + gw.node.cfg.request_timeout
    while not done():
        if time.monotonic() > deadline:
            raise EtcdError(GrpcStatus.UNAVAILABLE, MSG_TIMEOUT)
        await asyncio.sleep(0.02)


def _peer_url(body: dict[str, Any]) -> str:
    urls = arr(body.get("peerURLs"))
    if len(urls) != 1 or not isinstance(urls[0], str):
        raise EtcdError(GrpcStatus.INVALID_ARGUMENT, MSG_BAD_URLS)
    u = urlsplit(urls[0])
    if u.scheme != "http" or not u.hostname or not u.port:
        raise EtcdError(GrpcStatus.INVALID_ARGUMENT, MSG_BAD_URLS)
    return urls[0].rstrip("/")


def new_member_name(peer_url: str) -> str:
    """etcd's MemberAdd takes no name, raftkv's members need one: derive it from the
    peer URL (stable, so the operator can compute the --name to start the node with)."""
    return "member-" + hashlib.sha1(peer_url.encode()).hexdigest()[:10]


async def member_add(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    peer_url = _peer_url(body)
    learner = to_bool(body.get("isLearner"), "isLearner")
    name = new_member_name(peer_url)
    n = gw.node

    async def add() -> Any:
        return await reconfig.add_learner(n, name, peer_url, None)

    await _on_leader(gw, add, "POST", "/v1/members", {"name": name, "peer_url": peer_url})
    await _until(gw, lambda: any(m.peer_url == peer_url for m in n.members))
    rid = next(m.id for m in n.members if m.peer_url == peer_url)
    if not learner:  # etcd adds a voter directly; raftkv goes through a learner
        await _promote(gw, rid)
    member: dict[str, Any] = {"ID": str(gw.member_id(rid)), "name": name, "peerURLs": [peer_url]}
    if learner:
        member["isLearner"] = True
    return {"header": gw.header(0), "member": member, "members": members_body(gw)}


async def _promote(gw: Gateway, rid: int) -> None:
    n = gw.node

    async def promote() -> Any:
        return await reconfig.promote(n, rid)

    await _on_leader(gw, promote, "POST", f"/v1/members/{rid}/promote")
    await _until(gw, lambda: rid in n.conf_state.voters)


async def member_promote(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    rid = _raft_id(gw, body)
    await _promote(gw, rid)
    return {"header": gw.header(0), "members": members_body(gw)}


async def member_remove(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    rid = _raft_id(gw, body)
    n = gw.node

    async def remove() -> Any:
        return await reconfig.remove(n, rid)

    await _on_leader(gw, remove, "DELETE", f"/v1/members/{rid}")
    await _until(gw, lambda: all(m.id != rid for m in n.members))
    return {"header": gw.header(0), "members": members_body(gw)}


async def member_update(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    _raft_id(gw, body)
    raise EtcdError(GrpcStatus.UNIMPLEMENTED, "raftkv: a member's peer URL cannot be changed")


async def transfer_leadership(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    member = to_int(body.get("targetID"), "targetID", unsigned=True)
    rid = gw.raft_id(member)
    n = gw.node
    if rid is None or rid not in n.conf_state.voters:
        raise EtcdError(GrpcStatus.FAILED_PRECONDITION, MSG_BAD_TRANSFEREE)

    async def transfer() -> Any:
        return await reconfig.transfer_leader(n, rid)

    await _on_leader(gw, transfer, "POST", "/v1/leader/transfer", {"to": rid})
    return {"header": gw.header()}
