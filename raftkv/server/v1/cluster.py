"""/v1/members, /v1/leader/transfer, /v1/status and the health/metrics endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from raftkv.metrics import CONTENT_TYPE
from raftkv.server.v1.base import V1, json_ok
from raftkv.server.v1.errors import bad_request
from raftkv.server.v1.models import LeaderTransferRequest, MemberAddRequest
from raftkv.server.v1.params import path_int
from raftkv.service.cluster import MemberView


def member_json(m: MemberView) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "peer_url": m.peer_url,
        "client_url": m.client_url,
        "is_leader": m.is_leader,
        "is_learner": m.is_learner,
    }


class ClusterApi:
    def __init__(self, v1: V1) -> None:
        self.v1 = v1

    async def _model(self, req: web.Request, model: type[BaseModel]) -> Any:
        raw = await self.v1.raw_body(req)
        try:
            return model.model_validate_json(raw or b"{}")
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise bad_request(f"{where}: {first['msg']}") from None

    async def list(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        res = self.v1.s.cluster.members()
        return json_ok({"members": [member_json(m) for m in res.response]})

    async def add(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        body: MemberAddRequest = await self._model(req, MemberAddRequest)
        cluster = self.v1.s.cluster
        res = await cluster.add(body.peer_url, body.name, body.client_url, learner=True)
        members = cluster.members().response
        initial = ",".join(f"{x.name}={x.peer_url}" for x in members)
        return json_ok(
            {
                "member": member_json(res.response),
                "members": [member_json(x) for x in members],
                "initial_cluster": initial,
                "initial_cluster_state": "existing",
            },
            201,
        )

    async def promote(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        res = await self.v1.s.cluster.promote(path_int(req, "id", "member id"))
        return json_ok({"member": member_json(res.response)})

    async def remove(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        res = await self.v1.s.cluster.remove(path_int(req, "id", "member id"))
        return json_ok({"removed": member_json(res.response)})

    async def transfer(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        body: LeaderTransferRequest = await self._model(req, LeaderTransferRequest)
        res = await self.v1.s.cluster.transfer_leader(body.to)
        return json_ok({"leader": res.response})

    # --- status and health ------------------------------------------------------------
    async def status(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        return json_ok(self.v1.s.maintenance.node_status())

    async def cluster_status(self, req: web.Request) -> web.StreamResponse:
        """Every member's status, collected by this member over the peer links."""
        self.v1.query(req)
        res = await self.v1.s.overview.cluster()
        return json_ok({"members": res.response, "revision": res.revision})

    async def health(self, req: web.Request) -> web.StreamResponse:
        ok, reason = self.v1.s.maintenance.health()
        return json_ok({"health": ok, "reason": reason}, 200 if ok else 503)

    async def livez(self, req: web.Request) -> web.StreamResponse:
        return json_ok({"live": True})

    async def metrics(self, req: web.Request) -> web.StreamResponse:
        """Prometheus text format (metrics.py: etcd's names with a raftkv_ prefix)."""
        return web.Response(body=self.v1.node.prom.render(), headers={"Content-Type": CONTENT_TYPE})

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/members", self.list)
        r.add_post("/v1/members", self.add)
        r.add_post("/v1/members/{id:[-0-9a-fA-Fx]+}/promote", self.promote)
        r.add_delete("/v1/members/{id:[-0-9a-fA-Fx]+}", self.remove)
        r.add_post("/v1/leader/transfer", self.transfer)
        r.add_get("/v1/status", self.status)
        r.add_get("/v1/cluster/status", self.cluster_status)
        r.add_get("/health", self.health)
        r.add_get("/readyz", self.health)
        r.add_get("/livez", self.livez)
        r.add_get("/metrics", self.metrics)
