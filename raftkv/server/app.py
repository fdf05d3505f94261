"""HTTP routes of the client API. Handlers are thin: parse -> node -> encode.

Writes go through `Node.propose` (any member: followers forward inside Raft). Reads
are linearizable by default (one shared ReadIndex round per batch of concurrent
reads) and local with `?serializable`. Operations that need the leader's lease clocks
(keepalive, TTL lookups) are proxied to the leader's client URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from aiohttp import web

from raftkv import testmode as tm
from raftkv.node.node import Node, UnavailableError
from raftkv.node.watch import group_by_revision
from raftkv.raft import Role
from raftkv.server import debug, encode, members_api, openapi
from raftkv.server.errors import (
    ApiError,
    bad_request,
    error_response,
    from_mvcc,
    non_negative_int,
)
from raftkv.server.etcd import mount as mount_etcd
from raftkv.server.txn import parse_txn
from raftkv.storage import commands as cmds
from raftkv.storage.errors import MvccError, RevisionCompactedError
from raftkv.storage.results import ApplyResult, RangeResponse, TxnResponse
from raftkv.storage.writer import MAX_REQUEST_ID

log = structlog.get_logger("raftkv.server")

MAX_REQUEST = 3 * 512 * 1024  # 1.5 MiB, etcd's default max request size
NODE_KEY: web.AppKey[Node] = web.AppKey("node", Node)
SESSION_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json")


def _flag(req: web.Request, name: str) -> bool:
    if name not in req.query:
        return False
    return req.query[name].lower() not in ("false", "0", "no")


def _qint(req: web.Request, name: str, default: int = 0) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer") from None
    return non_negative_int(v, name)


def _request_id(req: web.Request) -> bytes | None:
    """The client's own request id (?request_id=<hex>) for a write it may retry on
    any node: the state machine applies one request id once and answers a retry with
    the first outcome. None when absent: each call is then a new request."""
    raw = req.query.get("request_id")
    if raw is None:
        return None
    try:
        rid = bytes.fromhex(raw)
    except ValueError:
        raise bad_request("request_id must be hex") from None
    if not 1 <= len(rid) <= MAX_REQUEST_ID:
        raise bad_request(f"request_id must be 1 to {MAX_REQUEST_ID} bytes")
    return rid


def _key(req: web.Request) -> bytes:
    return req.match_info.get("key", "").encode("utf-8")


def _key_range(req: web.Request) -> tuple[bytes, bytes]:
    """(key, range_end) from the path and ?prefix / ?range_end; "" + prefix = every key."""
    key = _key(req)
    if _flag(req, "prefix"):
        return (key, cmds.prefix_end(key)) if key else (b"\x00", b"\x00")
    return key, req.query.get("range_end", "").encode("utf-8")


def _checked(res: ApplyResult) -> ApplyResult:
    if res.error is not None:
        raise from_mvcc(res.error)
    return res


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except MvccError as e:
        return error_response(from_mvcc(e))
    except UnavailableError as e:
        return error_response(ApiError(503, "unavailable", str(e) or "unavailable"))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = "request_too_large" if e.status == 413 else e.reason.lower().replace(" ", "_")
        return error_response(ApiError(e.status, code, e.text or e.reason))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        return error_response(bad_request(f"malformed body: {e}"))
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception as e:  # a bug, never client input: log it, answer in JSON
        log.exception("internal error", path=request.path)
        return error_response(ApiError(500, "internal", f"internal error: {type(e).__name__}"))


class Api:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.session: aiohttp.ClientSession | None = None

    @property
    def term(self) -> int:
        return self.node.raft.term

    async def _body_json(self, req: web.Request) -> Any:
        raw = await req.read()
        if not raw:
            return {}
        return json.loads(raw)

    # --- kv -------------------------------------------------------------------------
    async def get(self, req: web.Request) -> web.StreamResponse:
        key, range_end = _key_range(req)
        if not key and not range_end:
            raise bad_request("key is empty (use ?prefix to list everything)")
        if not _flag(req, "serializable"):
            await self.node.read_barrier()
        keys_only, count_only = _flag(req, "keys_only"), _flag(req, "count_only")
        r = self.node.mvcc.range(
            key,
            range_end,
            revision=_qint(req, "revision"),
            limit=_qint(req, "limit"),
            keys_only=keys_only,
            count_only=count_only,
        )
        if not range_end:
            if not r.kvs:
                raise ApiError(404, "key_not_found", "key not found", {"revision": r.revision})
            kv = r.kvs[0]
            if "raw" in req.query:
                return web.Response(body=kv.value, content_type="application/octet-stream")
            out = encode.kv_json(kv, keys_only)
            out.update(revision=r.revision, raft_term=self.term)
            return _json(out)
        return _json(
            {
                "kvs": [] if count_only else [encode.kv_json(kv, keys_only) for kv in r.kvs],
                "count": r.count,
                "more": r.more,
                "revision": r.revision,
                "raft_term": self.term,
            }
        )

    def _cas_compares(self, req: web.Request, key: bytes) -> tuple[cmds.Compare, ...]:
        C, T, R = cmds.Compare, cmds.CompareTarget, cmds.CompareResult
        out: list[cmds.Compare] = []
        if _flag(req, "if_absent"):
            out.append(C(key, T.CREATE, R.EQUAL, 0))
        if "if_mod_revision" in req.query:
            out.append(C(key, T.MOD, R.EQUAL, _qint(req, "if_mod_revision")))
        if "if_version" in req.query:
            out.append(C(key, T.VERSION, R.EQUAL, _qint(req, "if_version")))
        if "if_value" in req.query:
            out.append(C(key, T.VALUE, R.EQUAL, req.query["if_value"].encode("utf-8")))
        return tuple(out)

    async def _write(
        self, req: web.Request, key: bytes, op: cmds.Put | cmds.DeleteRange
    ) -> tuple[ApplyResult, Any]:
        """Propose `op`, guarded by the ?if_* conditions (412 with the current key)."""
        compares = self._cas_compares(req, key)
        rid = _request_id(req)
        if not compares:
            res = _checked(await self.node.propose(op, rid))
            return res, res.response
        txn = cmds.Txn(compares, (op,), (cmds.Range(key),))
        res = _checked(await self.node.propose(txn, rid))
        tr = res.response
        assert isinstance(tr, TxnResponse)
        if not tr.succeeded:
            rr = tr.responses[0]
            assert isinstance(rr, RangeResponse)
            current = encode.kv_json(rr.kvs[0]) if rr.kvs else None
            raise ApiError(
                412,
                "compare_failed",
                "the condition on the key did not hold",
                {"current": current, "revision": res.revision},
            )
        return res, tr.responses[0]

    async def put(self, req: web.Request) -> web.StreamResponse:
        key = _key(req)
        if not key:
            raise bad_request("key is empty")
        value = await req.read()
        op = cmds.Put(key, value, lease=_qint(req, "lease"), prev_kv=_flag(req, "prev_kv"))
        res, resp = await self._write(req, key, op)
        out: dict[str, Any] = {"revision": res.revision, "raft_term": self.term}
        if getattr(resp, "prev_kv", None) is not None:
            out["prev_kv"] = encode.kv_json(resp.prev_kv)
        return _json(out)

    async def delete(self, req: web.Request) -> web.StreamResponse:
        key, range_end = _key_range(req)
        if not key and not range_end:
            raise bad_request("key is empty")
        op = cmds.DeleteRange(key, range_end, prev_kv=_flag(req, "prev_kv"))
        res, resp = await self._write(req, key, op)
        return _json(
            {
                "deleted": resp.deleted,
                "prev_kvs": [encode.kv_json(kv) for kv in resp.prev_kvs],
                "revision": res.revision,
                "raft_term": self.term,
            }
        )

    async def txn(self, req: web.Request) -> web.StreamResponse:
        t = parse_txn(await self._body_json(req))
        res = _checked(await self.node.propose(t))
        tr = res.response
        assert isinstance(tr, TxnResponse)
        out = encode.response_json(tr)
        out.update(revision=res.revision, raft_term=self.term)
        return _json(out)

    async def compact(self, req: web.Request) -> web.StreamResponse:
        body = await self._body_json(req)
        rev = body.get("revision") if isinstance(body, dict) else None
        if isinstance(rev, bool) or not isinstance(rev, int) or rev <= 0:
            raise bad_request('body must be {"revision": N} with N > 0')
        if rev > self.node.mvcc.current_revision():
            raise ApiError(400, "future_revision", "compaction revision is in the future")
        res = _checked(await self.node.propose(cmds.Compact(rev)))
        return _json({"revision": res.revision, "compact_revision": rev})

    # --- leases ---------------------------------------------------------------------
    async def _proxy(self, req: web.Request) -> web.StreamResponse | None:
        """Forward to the leader (lease clocks live there); None when we are it."""
        node = self.node
        if node.role == Role.LEADER:
            return None
        url = node.leader_client_url
        if url is None:
            raise UnavailableError("no leader")
        if req.headers.get("X-Raftkv-Forwarded"):
            raise UnavailableError("leader changed while forwarding")
        assert self.session is not None
        try:
            async with self.session.request(
                req.method,
                url + req.rel_url.path_qs,
                data=await req.read(),
                headers={"X-Raftkv-Forwarded": "1", "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=node.cfg.request_timeout),
            ) as r:
                return web.Response(
                    status=r.status, body=await r.read(), content_type="application/json"
                )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise UnavailableError(f"leader unreachable: {e}") from e

    def _lease_id(self, req: web.Request) -> int:
        try:
            lid = int(req.match_info["id"], 0)
        except ValueError:
            raise bad_request("lease id must be an integer") from None
        return non_negative_int(lid, "lease id", positive=True)

    async def lease_grant(self, req: web.Request) -> web.StreamResponse:
        body = await self._body_json(req)
        if not isinstance(body, dict):
            raise bad_request("body must be a JSON object")
        ttl = non_negative_int(body.get("ttl"), "ttl")
        lid = non_negative_int(body.get("id", 0), "id")
        ttl = self.node.lessor.effective_ttl(ttl)
        res = _checked(await self.node.propose(cmds.LeaseGrant(ttl, lid)))
        r = res.response
        return _json({"id": r.id, "ttl": r.ttl, "revision": res.revision})  # type: ignore[union-attr]

    async def lease_keepalive(self, req: web.Request) -> web.StreamResponse:
        lid = self._lease_id(req)
        proxied = await self._proxy(req)
        if proxied is not None:
            return proxied
        ttl = self.node.lessor.keepalive(lid)
        if ttl is None:
            raise ApiError(404, "lease_not_found", "etcdserver: requested lease not found")
        return _json({"id": lid, "ttl": ttl})

    async def lease_revoke(self, req: web.Request) -> web.StreamResponse:
        lid = self._lease_id(req)
        res = _checked(await self.node.propose(cmds.LeaseRevoke(lid)))
        return _json({"revision": res.revision})

    async def lease_get(self, req: web.Request) -> web.StreamResponse:
        lid = self._lease_id(req)
        proxied = await self._proxy(req)
        if proxied is not None:
            return proxied
        info = self.node.mvcc.lease_get(lid)
        if info is None:
            raise ApiError(404, "lease_not_found", "etcdserver: requested lease not found")
        remaining = self.node.lessor.remaining(lid)
        out: dict[str, Any] = {
            "id": lid,
            "granted_ttl": info.ttl,
            "ttl": remaining if remaining is not None else info.ttl,
        }
        if _flag(req, "keys"):
            out["keys"] = [encode.text(k) for k in info.keys]
            out["keys_b64"] = [encode.b64(k) for k in info.keys]
        return _json(out)

    async def leases(self, req: web.Request) -> web.StreamResponse:
        return _json({"leases": [{"id": i} for i in self.node.mvcc.lease_list()]})

    # --- watch ----------------------------------------------------------------------
    async def watch(self, req: web.Request) -> web.StreamResponse:
        key, range_end = _key_range(req)
        if not key and not range_end:
            raise bad_request("key is empty (use ?prefix to watch everything)")
        start = _qint(req, "start_revision")
        if start and tm.mutation("watch-resume-skip"):
            start += 1  # MUTATION: resuming at r silently drops revision r's events
        want_prev = _flag(req, "prev_kv")
        sse = "text/event-stream" in req.headers.get("Accept", "")
        node = self.node
        w = node.hub.subscribe(key, range_end)
        resp = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
                "Cache-Control": "no-cache",
            }
        )

        async def send(obj: dict[str, Any]) -> None:
            line = json.dumps(obj)
            await resp.write((f"data: {line}\n\n" if sse else line + "\n").encode())

        def events_json(evs: list[Any]) -> list[dict[str, Any]]:
            out = [encode.event_json(e) for e in evs]
            if not want_prev:
                for o in out:
                    o.pop("prev_kv", None)
            return out

        async def catch_up(after: int) -> int:
            """Send stored history after `after` up to the current revision; returns
            the last revision sent. Raises RevisionCompactedError below compaction."""
            last = after
            while True:
                page = node.mvcc.events(last + 1, key, range_end, 1000, want_prev)
                for rev, evs in group_by_revision(page.events):
                    await send({"revision": rev, "events": events_json(evs)})
                if page.last_revision <= last:
                    return last
                last = page.last_revision
                if last >= node.mvcc.current_revision():
                    return last

        try:
            await resp.prepare(req)
            current = node.mvcc.current_revision()
            last = current
            await send({"created": True, "revision": current})
            try:
                if start:
                    last = await catch_up(start - 1)
                while True:
                    try:
                        batch = await asyncio.wait_for(w.queue.get(), 10.0)
                    except TimeoutError:
                        await send({"progress": True, "revision": node.mvcc.current_revision()})
                        continue
                    if batch is None and w.overflowed:
                        # We fell behind the live feed: subscribe afresh and catch up
                        # from storage (memory stays bounded; nothing is skipped).
                        node.hub.unsubscribe(w)
                        w = node.hub.subscribe(key, range_end)
                        last = await catch_up(last)
                        continue
                    if batch is None:
                        await send({"canceled": True, "reason": "node stopped"})
                        return resp
                    fresh = [e for e in batch if e.revision > last]
                    for rev, evs in group_by_revision(fresh):
                        await send({"revision": rev, "events": events_json(evs)})
                        last = rev
            except RevisionCompactedError:
                await send(
                    {
                        "compact_revision": node.mvcc.compact_revision(),
                        "canceled": True,
                        "error": {
                            "code": "compacted",
                            "message": "required revision has been compacted",
                        },
                    }
                )
                return resp
        except (ConnectionResetError, asyncio.CancelledError):
            return resp
        finally:
            node.hub.unsubscribe(w)

    # --- cluster/status ---------------------------------------------------------------
    async def status(self, req: web.Request) -> web.StreamResponse:
        return _json(self.node.status())

    def _healthy(self) -> tuple[bool, str]:
        node = self.node
        if node.fatal is not None:
            return False, "node stopped applying"
        if node.removed:
            return False, "removed from the cluster"
        if node.leader == 0:
            return False, "no leader"
        if node.mvcc.applied_index() < node.raft.hard_state.commit:
            return False, "applying committed entries"
        return True, "ok"

    async def health(self, req: web.Request) -> web.StreamResponse:
        ok, reason = self._healthy()
        return _json({"health": ok, "reason": reason}, 200 if ok else 503)

    async def livez(self, req: web.Request) -> web.StreamResponse:
        return _json({"live": True})

    async def metrics(self, req: web.Request) -> web.StreamResponse:
        n = self.node
        st = n.status()
        lines = []
        gauges = {
            "raftkv_is_leader": int(n.role == Role.LEADER),
            "raftkv_has_leader": int(n.leader != 0),
            "raftkv_term": st["term"],
            "raftkv_commit_index": st["commit"],
            "raftkv_applied_index": st["applied"],
            "raftkv_revision": st["revision"],
            "raftkv_db_size_bytes": st["db_size"],
            "raftkv_watchers": len(n.hub.watchers),
            "raftkv_uptime_seconds": int(time.monotonic() - n.started),
        }
        for k, v in gauges.items():
            lines += [f"# TYPE {k} gauge", f'{k}{{node="{n.cfg.name}"}} {v}']
        for k, v in n.metrics.items():
            lines += [f"# TYPE raftkv_{k} counter", f'raftkv_{k}{{node="{n.cfg.name}"}} {v}']
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


def build_app(node: Node) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST, middlewares=[errors_middleware])
    api = Api(node)
    app[NODE_KEY] = node

    async def session_ctx(app: web.Application) -> Any:
        api.session = aiohttp.ClientSession()
        yield
        with contextlib.suppress(Exception):
            await api.session.close()

    app.cleanup_ctx.append(session_ctx)
    r = app.router
    r.add_get("/v1/kv/{key:.*}", api.get)
    r.add_put("/v1/kv/{key:.*}", api.put)
    r.add_post("/v1/kv/{key:.*}", api.put)
    r.add_delete("/v1/kv/{key:.*}", api.delete)
    r.add_post("/v1/txn", api.txn)
    r.add_post("/v1/compact", api.compact)
    r.add_post("/v1/lease/grant", api.lease_grant)
    r.add_post("/v1/lease/{id}/keepalive", api.lease_keepalive)
    r.add_delete("/v1/lease/{id}", api.lease_revoke)
    r.add_get("/v1/lease/{id}", api.lease_get)
    r.add_get("/v1/leases", api.leases)
    r.add_get("/v1/watch/{key:.*}", api.watch)
    r.add_get("/v1/status", api.status)
    members_api.add_routes(r, api)
    openapi.add_routes(r)
    r.add_get("/health", api.health)
    r.add_get("/readyz", api.health)
    r.add_get("/livez", api.livez)
    r.add_get("/metrics", api.metrics)
    debug.add_routes(r, node)  # 404 unless RAFTKV_TEST_MODE=1
    mount_etcd(app, node)  # etcd v3 JSON gateway: /v3, /v3beta, /version
    return app
