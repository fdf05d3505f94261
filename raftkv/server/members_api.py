"""HTTP handlers for cluster membership and leader transfer (etcd's MemberAdd & co).

Every change runs on the leader (a follower proxies the request there), waits until
the conf change has applied, and answers with the member as the cluster now sees it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from raftkv.node import reconfig
from raftkv.node.membership import Member
from raftkv.server.errors import ApiError, bad_request
from raftkv.server.models import LeaderTransferRequest, MemberAddRequest

if TYPE_CHECKING:
    from raftkv.server.app import Api


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json")


def member_json(api: Api, m: Member) -> dict[str, Any]:
    n = api.node
    return {
        "id": m.id,
        "name": m.name,
        "peer_url": m.peer_url,
        "client_url": n.client_urls.get(m.id),
        "is_leader": m.id == n.leader,
        "is_learner": m.id in n.conf_state.learners,
    }


async def _body(req: web.Request, model: type[Any]) -> Any:
    raw = await req.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise bad_request(f"{where}: {first['msg']}") from None


def _member_id(req: web.Request) -> int:
    try:
        nid = int(req.match_info["id"], 0)
    except ValueError:
        raise bad_request("member id must be an integer") from None
    if nid <= 0:
        raise bad_request("member id must be positive")
    return nid


class MembersApi:
    def __init__(self, api: Api) -> None:
        self.api = api

    async def _on_leader(self, req: web.Request) -> web.StreamResponse | None:
        return await self.api._proxy(req)

    async def _run(self, coro: Any) -> Any:
        try:
            return await coro
        except reconfig.ReconfigError as e:
            raise ApiError(e.status, e.code, e.message) from None

    async def list(self, req: web.Request) -> web.StreamResponse:
        return _json({"members": [member_json(self.api, m) for m in self.api.node.members]})

    async def add(self, req: web.Request) -> web.StreamResponse:
        body: MemberAddRequest = await _body(req, MemberAddRequest)
        proxied = await self._on_leader(req)
        if proxied is not None:
            return proxied
        node = self.api.node
        m = await self._run(reconfig.add_learner(node, body.name, body.peer_url, body.client_url))
        initial = ",".join(f"{x.name}={x.peer_url}" for x in node.members)
        return _json(
            {
                "member": member_json(self.api, m),
                "members": [member_json(self.api, x) for x in node.members],
                "initial_cluster": initial,
                "initial_cluster_state": "existing",
            },
            201,
        )

    async def promote(self, req: web.Request) -> web.StreamResponse:
        nid = _member_id(req)
        proxied = await self._on_leader(req)
        if proxied is not None:
            return proxied
        m = await self._run(reconfig.promote(self.api.node, nid))
        return _json({"member": member_json(self.api, m)})

    async def remove(self, req: web.Request) -> web.StreamResponse:
        nid = _member_id(req)
        proxied = await self._on_leader(req)
        if proxied is not None:
            return proxied
        m = await self._run(reconfig.remove(self.api.node, nid))
        out = member_json(self.api, m)
        out.update(is_leader=False, is_learner=False)
        return _json({"removed": out})

    async def transfer(self, req: web.Request) -> web.StreamResponse:
        body: LeaderTransferRequest = await _body(req, LeaderTransferRequest)
        proxied = await self._on_leader(req)
        if proxied is not None:
            return proxied
        leader = await self._run(reconfig.transfer_leader(self.api.node, body.to))
        return _json({"leader": leader})


def add_routes(router: web.UrlDispatcher, api: Api) -> None:
    m = MembersApi(api)
    router.add_get("/v1/members", m.list)
    router.add_post("/v1/members", m.add)
    router.add_post("/v1/members/{id}/promote", m.promote)
    router.add_delete("/v1/members/{id}", m.remove)
    router.add_post("/v1/leader/transfer", m.transfer)
