"""/v3/cluster/member/* and /v3/maintenance/transfer-leadership over the cluster
service: parse etcd's member ids and URLs, call, encode etcd's member shapes."""

from __future__ import annotations

from typing import Any

from raftkv.errors import BadTransferee, Invalid, InvalidArgument, MemberNotFound
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.jsonpb import arr, to_bool, to_int
from raftkv.service.cluster import MemberView, check_url


def members_body(gw: Gateway) -> list[dict[str, Any]]:
    return [member_body(gw, m) for m in gw.s.cluster.members().response]


def member_body(gw: Gateway, m: MemberView) -> dict[str, Any]:
    one: dict[str, Any] = {"ID": str(gw.member_id(m.id)), "name": m.name}
    one["peerURLs"] = [m.peer_url]
    if m.client_url:
        one["clientURLs"] = [m.client_url]
    if m.is_learner:
        one["isLearner"] = True
    return one


async def member_list(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    return {"header": gw.header(0), "members": members_body(gw)}


def _raft_id(gw: Gateway, body: dict[str, Any], field: str = "ID") -> int:
    member = to_int(body.get(field), field, unsigned=True)
    rid = gw.raft_id(member)
    if rid is None:
        raise MemberNotFound(member)
    return rid


def _peer_url(body: dict[str, Any]) -> str:
    urls = arr(body.get("peerURLs"))
    if len(urls) != 1:
        raise InvalidArgument(Invalid.BAD_MEMBER_URLS)
    return check_url(urls[0], ("http",))


async def member_add(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    peer_url = _peer_url(body)
    learner = to_bool(body.get("isLearner"), "isLearner")
    res = await gw.s.cluster.add(peer_url, learner=learner)
    m = res.response
    member: dict[str, Any] = {"ID": str(gw.member_id(m.id)), "name": m.name, "peerURLs": [peer_url]}
    if learner:
        member["isLearner"] = True
    return {"header": gw.header(0), "member": member, "members": members_body(gw)}


async def member_promote(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.s.cluster.promote(_raft_id(gw, body))
    return {"header": gw.header(0), "members": members_body(gw)}


async def member_remove(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.s.cluster.remove(_raft_id(gw, body))
    return {"header": gw.header(0), "members": members_body(gw)}


async def member_update(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    await gw.s.cluster.update(_raft_id(gw, body), arr(body.get("peerURLs")))
    return {}


async def transfer_leadership(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    member = to_int(body.get("targetID"), "targetID", unsigned=True)
    rid = gw.raft_id(member)
    if rid is None:
        raise BadTransferee(member)
    await gw.s.cluster.transfer_leader(rid)
    return {"header": gw.header()}
