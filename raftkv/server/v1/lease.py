"""/v1/lease/*, /v1/leases: grant, keepalive, time-to-live, revoke, list."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftkv.server.v1 import encode
from raftkv.server.v1.base import V1, json_ok
from raftkv.server.v1.errors import non_negative_int
from raftkv.server.v1.params import only_fields, path_int


class LeaseApi:
    def __init__(self, v1: V1) -> None:
        self.v1 = v1

    async def grant(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        body = await self.v1.body(req, required=True)
        only_fields(body, {"ttl", "id"})
        ttl = non_negative_int(body.get("ttl"), "ttl")
        lid = non_negative_int(body.get("id", 0), "id")
        res = await self.v1.s.lease.grant(ttl, lid)
        r = res.response
        return json_ok({"id": r.id, "ttl": r.ttl, "revision": res.revision})

    async def keepalive(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        lid = path_int(req, "id", "lease id")
        res = await self.v1.s.lease.keepalive(lid)
        return json_ok({"id": lid, "ttl": res.response})

    async def revoke(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        res = await self.v1.s.lease.revoke(path_int(req, "id", "lease id"))
        return json_ok({"revision": res.revision})

    async def get(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        lid = path_int(req, "id", "lease id")
        want_keys = q.flag("keys")
        st = (await self.v1.s.lease.time_to_live(lid, want_keys)).response
        out: dict[str, Any] = {"id": lid, "granted_ttl": st.granted_ttl, "ttl": st.ttl}
        if want_keys:
            out["keys"] = [encode.text(k) for k in st.keys]
            out["keys_b64"] = [encode.b64(k) for k in st.keys]
        return json_ok(out)

    async def leases(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        res = await self.v1.s.lease.leases()
        return json_ok({"leases": [{"id": i} for i in res.response]})

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_post("/v1/lease/grant", self.grant)
        r.add_post("/v1/lease/{id:[-0-9a-fA-Fx]+}/keepalive", self.keepalive)
        r.add_delete("/v1/lease/{id:[-0-9a-fA-Fx]+}", self.revoke)
        r.add_get("/v1/lease/{id:[-0-9a-fA-Fx]+}", self.get)
        r.add_get("/v1/leases", self.leases)
