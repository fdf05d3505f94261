"""`GET /v1/openapi.json`: an OpenAPI 3.1 document of the native API.

Body schemas come from the pydantic models in `models.py`; the per-route facts
(query parameters, status codes) live in ROUTES below. The document only lists routes
that are both registered in the app and described here, and a test fails when a /v1
route is registered without a description, so the document cannot silently rot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from raftkv.server.v1 import models as M

# Flags are curl-style: `?prefix` alone (empty) means true.
Q_BOOL = {"type": "string", "enum": ["", "true", "false", "1", "0", "yes", "no"]}
Q_INT = {"type": "integer", "minimum": 0}
Q_STR = {"type": "string"}

RANGE_Q = {
    "prefix": (Q_BOOL, "every key starting with the path's key (empty key: all keys)"),
    "range_end": (Q_STR, "end of the half-open range [key, range_end)"),
}
CAS_Q = {
    "if_absent": (Q_BOOL, "write only if the key does not exist (412 otherwise)"),
    "if_mod_revision": (Q_INT, "write only if the key's mod_revision equals this"),
    "if_version": (Q_INT, "write only if the key's version equals this"),
    "if_value": (Q_STR, "write only if the key's current value equals this"),
}
RID_Q = {
    "request_id": (
        {"type": "string", "pattern": "^([0-9a-fA-F]{2}){1,128}$"},
        "hex id (1-128 bytes) of a request the client may retry on any node: applied "
        "once, a retry gets the first outcome",
    ),
}
LEADER_ONLY = {503: "no leader, or the request did not commit in time (retry)"}
# Every route may answer these (bad input, browser origin, limits, availability).
COMMON = {
    400: "malformed input (an unknown or misspelled option is refused too)",
    403: "a browser origin not allowed by --cors",
    408: "the request body did not arrive within --request-body-timeout",
    413: "the request is larger than --max-request-bytes",
    429: "a per-member limit (watchers, streams) is reached",
    503: "no leader, the member is stopping, or the request timed out (retry)",
    507: "no space: the backend quota is reached (NOSPACE alarm) or this disk is full",
}
WRITES = {409: "request_id reused for a different request"}


@dataclass(frozen=True)
class Op:
    summary: str
    ok: int = 200
    # a str is a non-JSON media type; a tuple is one of several shapes
    response: type[BaseModel] | str | tuple[type[BaseModel], ...] | None = None
    request: type[BaseModel] | str | None = None
    query: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    also: str | None = None  # another media type the success may carry (e.g. ?raw)


# PUT and POST on a key are the same operation (POST for clients that cannot PUT).
PUT_KEY = Op(
    "Write a key (body = value bytes), optionally guarded by a condition",
    response=M.PutResponse,
    request="application/octet-stream",
    query={
        "lease": (Q_INT, "attach the key to this lease"),
        "prev_kv": (Q_BOOL, "return the previous key-value"),
        **CAS_Q,
        **RID_Q,
    },
    errors={404: "lease not found", 412: "condition failed", **WRITES},
)

ROUTES: dict[tuple[str, str], Op] = {
    ("GET", "/v1/kv/{key}"): Op(
        "Read a key, a prefix or a range (linearizable unless ?serializable)",
        response=(M.KeyValueResponse, M.RangeResponse),
        also="application/octet-stream",
        query={
            **RANGE_Q,
            "revision": (Q_INT, "read at this historical revision"),
            "limit": (Q_INT, "at most this many keys"),
            "keys_only": (Q_BOOL, "omit values"),
            "count_only": (Q_BOOL, "only the count"),
            "serializable": (Q_BOOL, "local read, possibly stale, no leader round-trip"),
            "raw": (Q_BOOL, "the value's bytes as application/octet-stream"),
        },
        errors={
            400: "bad query",
            404: "key not found",
            **LEADER_ONLY,
        },
    ),
    ("PUT", "/v1/kv/{key}"): PUT_KEY,
    ("POST", "/v1/kv/{key}"): replace(
        PUT_KEY, summary="Same as PUT (for clients that cannot send PUT)"
    ),
    ("DELETE", "/v1/kv/{key}"): Op(
        "Delete a key, a prefix or a range",
        response=M.DeleteResponse,
        query={**RANGE_Q, "prev_kv": (Q_BOOL, "return the deleted pairs"), **CAS_Q, **RID_Q},
        errors={412: "condition failed", **WRITES},
    ),
    ("POST", "/v1/txn"): Op(
        "Atomic compare-and-swap transaction (etcd Txn)",
        response=M.TxnResponse,
        request=M.TxnRequest,
        query={
            "serializable": (Q_BOOL, "a txn that only reads: serve it locally, possibly stale"),
            **RID_Q,
        },
        errors=WRITES,
    ),
    ("POST", "/v1/compact"): Op(
        "Compact the MVCC history up to a revision",
        response=M.CompactResponse,
        request=M.CompactRequest,
        errors={400: "bad or future revision", **LEADER_ONLY},
    ),
    ("POST", "/v1/lease/grant"): Op(
        "Grant a lease",
        response=M.LeaseGrantResponse,
        request=M.LeaseGrantRequest,
        errors={400: "bad body", 409: "lease id exists", **LEADER_ONLY},
    ),
    ("POST", "/v1/lease/{id}/keepalive"): Op(
        "Renew a lease (answered by the leader)",
        response=M.LeaseKeepAliveResponse,
        errors={400: "bad id", 404: "lease not found", **LEADER_ONLY},
    ),
    ("DELETE", "/v1/lease/{id}"): Op(
        "Revoke a lease and delete its keys",
        response=M.RevisionResponse,
        errors={400: "bad id", 404: "lease not found", **LEADER_ONLY},
    ),
    ("GET", "/v1/lease/{id}"): Op(
        "Remaining TTL of a lease",
        response=M.LeaseTtlResponse,
        query={"keys": (Q_BOOL, "list the attached keys")},
        errors={400: "bad id", 404: "lease not found", **LEADER_ONLY},
    ),
    ("GET", "/v1/leases"): Op("List lease ids", response=M.LeaseListResponse),
    ("GET", "/v1/watch/{key}"): Op(
        "Stream changes (NDJSON, or SSE with Accept: text/event-stream)",
        response="application/x-ndjson",
        query={
            **RANGE_Q,
            "start_revision": (Q_INT, "replay history from this revision first"),
            "prev_kv": (Q_BOOL, "include the previous key-value in events"),
        },
        errors={400: "bad query"},
    ),
    ("GET", "/v1/status"): Op("This member's Raft and storage status", response=M.StatusResponse),
    ("GET", "/v1/cluster/status"): Op(
        "Every member's status, collected by this member over the peer links "
        "(a member that does not answer within 1 s is listed with reachable: false)",
        response=M.ClusterStatusResponse,
    ),
    ("GET", "/v1/members"): Op("List the cluster members", response=M.MemberListResponse),
    ("POST", "/v1/members"): Op(
        "Add a member as a learner; start it with --initial-cluster-state existing",
        ok=201,
        response=M.MemberAddResponse,
        request=M.MemberAddRequest,
        errors={400: "bad body", 409: "member exists or a change is pending", **LEADER_ONLY},
    ),
    ("POST", "/v1/members/{id}/promote"): Op(
        "Promote a learner to a voter",
        response=M.MemberResponse,
        errors={
            400: "bad id",
            404: "no such member",
            409: "a change is pending",
            412: "not a learner, or the learner is not caught up",
            **LEADER_ONLY,
        },
    ),
    ("DELETE", "/v1/members/{id}"): Op(
        "Remove a member (a removed leader steps down; a removed member exits)",
        response=M.MemberRemoveResponse,
        errors={400: "bad id", 404: "no such member", 409: "a change is pending", **LEADER_ONLY},
    ),
    ("POST", "/v1/leader/transfer"): Op(
        "Transfer leadership to a voter",
        response=M.LeaderTransferResponse,
        request=M.LeaderTransferRequest,
        errors={400: "bad body", 412: "the target is not a voter", **LEADER_ONLY},
    ),
    ("GET", "/v1/openapi.json"): Op("This document", response="application/json"),
}


def route_keys(app: web.Application, prefix: str = "/v1/") -> set[tuple[str, str]]:
    """(METHOD, path) of every route under `prefix`, with `{key:.*}` written `{key}`."""
    out = set()
    for r in app.router.routes():
        path = r.resource.canonical if r.resource is not None else ""
        if r.method == "HEAD" or not path.startswith(prefix):
            continue
        out.add((r.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)))
    return out


def _models(body: Any) -> tuple[type[BaseModel], ...]:
    if isinstance(body, type):
        return (body,)
    if isinstance(body, tuple):
        return body
    return ()


def _content(body: Any, ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    if isinstance(body, str):
        return {body: {"schema": {"type": "string"}}}
    models = _models(body)
    schema = ref[models[0]] if len(models) == 1 else {"oneOf": [ref[m] for m in models]}
    return {"application/json": {"schema": schema}}


PATH_PARAMS = {
    "key": {"type": "string"},
    "id": {"type": "integer", "minimum": 1, "maximum": (1 << 63) - 1},
}


def build_document(app: web.Application) -> dict[str, Any]:
    keys = sorted(route_keys(app) & ROUTES.keys())
    used: set[type[BaseModel]] = {M.ErrorResponse}
    for k in keys:
        for b in (ROUTES[k].request, ROUTES[k].response):
            used.update(_models(b))
    refs, top = models_json_schema(
        [(m, "validation") for m in sorted(used, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    ref = {m: refs[(m, "validation")] for m in used}
    err = {"application/json": {"schema": ref[M.ErrorResponse]}}
    paths: dict[str, dict[str, Any]] = {}
    for method, path in keys:
        op = ROUTES[(method, path)]
        params = [
            {"name": p, "in": "path", "required": True, "schema": PATH_PARAMS.get(p, Q_STR)}
            for p in re.findall(r"\{(\w+)\}", path)
        ]
        params += [
            {"name": n, "in": "query", "required": False, "schema": sch, "description": d}
            for n, (sch, d) in op.query.items()
        ]
        responses: dict[str, Any] = {str(op.ok): {"description": "success"}}
        if op.response is not None:
            responses[str(op.ok)]["content"] = _content(op.response, ref)
            if op.also:
                responses[str(op.ok)]["content"][op.also] = {"schema": {"type": "string"}}
        for status, why in {**COMMON, **op.errors}.items():
            responses[str(status)] = {"description": why, "content": err}
        spec: dict[str, Any] = {"summary": op.summary, "responses": responses}
        if params:
            spec["parameters"] = params
        if op.request is not None:
            spec["requestBody"] = {"required": True, "content": _content(op.request, ref)}
        paths.setdefault(path, {})[method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {"title": "raftkv native HTTP API", "version": "1"},
        "paths": paths,
        "components": {"schemas": top.get("$defs", {})},
    }


def add_routes(router: web.UrlDispatcher) -> None:
    async def handler(req: web.Request) -> web.StreamResponse:
        return web.json_response(build_document(req.app))

    router.add_get("/v1/openapi.json", handler)
