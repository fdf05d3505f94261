"""/v1/kv, /v1/txn, /v1/compact: keys over HTTP with curl-friendly options."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from raftkv.server.v1 import encode
from raftkv.server.v1.base import V1, json_ok
from raftkv.server.v1.errors import ApiError, bad_request
from raftkv.server.v1.params import Query, only_fields, path_key
from raftkv.server.v1.txn import parse_txn
from raftkv.storage import commands as cmds


def _key_range(q: Query, key: bytes) -> tuple[bytes, bytes]:
    """(key, range_end) from the path and ?prefix / ?range_end; "" + prefix = every key."""
    if q.flag("prefix"):
        if q.text("range_end"):
            raise bad_request("give either prefix or range_end, not both")
        return (key, cmds.prefix_end(key)) if key else (b"\x00", b"\x00")
    return key, q.bytes("range_end") or b""


def _compares(q: Query, key: bytes) -> tuple[cmds.Compare, ...]:
    C, T, R = cmds.Compare, cmds.CompareTarget, cmds.CompareResult
    out: list[cmds.Compare] = []
    if q.flag("if_absent"):
        out.append(C(key, T.CREATE, R.EQUAL, 0))
    if "if_mod_revision" in q:
        out.append(C(key, T.MOD, R.EQUAL, q.int("if_mod_revision")))
    if "if_version" in q:
        out.append(C(key, T.VERSION, R.EQUAL, q.int("if_version")))
    if "if_value" in q:
        out.append(C(key, T.VALUE, R.EQUAL, q.bytes("if_value") or b""))
    return tuple(out)


class KvApi:
    def __init__(self, v1: V1) -> None:
        self.v1 = v1

    async def get(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        key, range_end = _key_range(q, path_key(req))
        if not key and not range_end:
            raise bad_request("key is empty (use ?prefix to list everything)")
        keys_only, count_only = q.flag("keys_only"), q.flag("count_only")
        r = cmds.Range(
            key,
            range_end,
            revision=q.int("revision"),
            limit=q.int("limit"),
            keys_only=keys_only,
            count_only=count_only,
        )
        res = await self.v1.s.kv.range(r, q.flag("serializable"))
        resp = res.response
        if not range_end:
            if not resp.kvs:
                raise ApiError(404, "key_not_found", "key not found", {"revision": res.revision})
            kv = resp.kvs[0]
            if q.flag("raw"):
                return web.Response(body=kv.value, content_type="application/octet-stream")
            out = encode.kv_json(kv, keys_only)
            out.update(revision=res.revision, raft_term=res.term)
            return json_ok(out)
        return json_ok(
            {
                "kvs": [] if count_only else [encode.kv_json(kv, keys_only) for kv in resp.kvs],
                "count": resp.count,
                "more": resp.more,
                "revision": res.revision,
                "raft_term": res.term,
            }
        )

    async def put(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        key = path_key(req)
        if not key:
            raise bad_request("key is empty")
        lease, prev_kv = q.int("lease"), q.flag("prev_kv")
        compares = _compares(q, key)
        client_id = q.client_id()
        op = cmds.Put(key, await self.v1.raw_body(req), lease=lease, prev_kv=prev_kv)
        res = await self.v1.s.kv.guarded_write(key, op, compares, client_id)
        out: dict[str, Any] = {"revision": res.revision, "raft_term": res.term}
        prev = getattr(res.response, "prev_kv", None)
        if prev is not None:
            out["prev_kv"] = encode.kv_json(prev)
        return json_ok(out)

    async def delete(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        key, range_end = _key_range(q, path_key(req))
        if not key and not range_end:
            raise bad_request("key is empty")
        op = cmds.DeleteRange(key, range_end, prev_kv=q.flag("prev_kv"))
        res = await self.v1.s.kv.guarded_write(key, op, _compares(q, key), q.client_id())
        resp = res.response
        return json_ok(
            {
                "deleted": resp.deleted,  # type: ignore[union-attr]
                "prev_kvs": [encode.kv_json(kv) for kv in resp.prev_kvs],  # type: ignore[union-attr]
                "revision": res.revision,
                "raft_term": res.term,
            }
        )

    async def txn(self, req: web.Request) -> web.StreamResponse:
        q = self.v1.query(req)
        t = parse_txn(await self.v1.body(req, required=True))
        res = await self.v1.s.kv.txn(t, q.flag("serializable"), q.client_id())
        out = encode.response_json(res.response)
        out.pop("type", None)
        out.update(revision=res.revision, raft_term=res.term)
        return json_ok(out)

    async def compact(self, req: web.Request) -> web.StreamResponse:
        self.v1.query(req)
        body = await self.v1.body(req, required=True)
        only_fields(body, {"revision", "physical"})
        rev = body.get("revision")
        if isinstance(rev, bool) or not isinstance(rev, int) or rev <= 0:
            raise bad_request('body must be {"revision": N} with N > 0')
        physical = body.get("physical", False)
        if not isinstance(physical, bool):
            raise bad_request("physical must be a boolean")
        res = await self.v1.s.kv.compact(rev, physical)
        return json_ok({"revision": res.revision, "compact_revision": rev})

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/v1/kv/{key:[\\s\\S]*}", self.get)
        r.add_put("/v1/kv/{key:[\\s\\S]*}", self.put)
        r.add_post("/v1/kv/{key:[\\s\\S]*}", self.put)
        r.add_delete("/v1/kv/{key:[\\s\\S]*}", self.delete)
        r.add_post("/v1/txn", self.txn)
        r.add_post("/v1/compact", self.compact)
