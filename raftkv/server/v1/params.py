"""Parsing the native API's inputs: query options, path keys and ids, JSON bodies.

Every option a route takes is declared once, in the OpenAPI route table
(openapi.ROUTES); a request naming an option its route does not declare is refused
with a 400 that names it, so a misspelled `?ttl=` can never be silently ignored.
Bodies are JSON objects parsed by orjson (depth-limited, no surrogates, no integer
beyond 64 bits) within the body limits.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from raftkv.server.v1.errors import bad_request, non_negative_int

_TEMPLATE = re.compile(r"\{(\w+):[^}]*\}")
TRUE = frozenset({"", "1", "true", "yes"})
FALSE = frozenset({"0", "false", "no"})
MAX_CLIENT_ID = 128


def route_template(req: web.Request) -> tuple[str, str]:
    resource = req.match_info.route.resource
    path = resource.canonical if resource is not None else req.path
    method = "PUT" if req.method == "POST" and path.startswith("/v1/kv/") else req.method
    return method, _TEMPLATE.sub(r"{\1}", path)


class Query:
    """The query options of one request, checked against its route's declaration."""

    def __init__(self, req: web.Request, allowed: frozenset[str]) -> None:
        self.q = req.query
        if not self.q:
            return
        names = list(self.q)
        if not allowed.issuperset(names):
            unknown = sorted(set(names) - allowed)
            raise bad_request(
                f"unknown query option(s) {', '.join(unknown)} "
                f"(this route takes: {', '.join(sorted(allowed)) or 'none'})"
            )
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise bad_request(f"query option {dup} given more than once")

    def __contains__(self, name: str) -> bool:
        return name in self.q

    def flag(self, name: str) -> bool:
        if name not in self.q:
            return False
        v = self.q[name].lower()
        if v in TRUE:
            return True
        if v in FALSE:
            return False
        raise bad_request(f"{name} must be true or false")

    def int(self, name: str, default: int = 0) -> int:
        raw = self.q.get(name)
        if raw is None:
            return default
        if len(raw) > 20 or not raw.lstrip("-").isdigit():
            raise bad_request(f"{name} must be an integer")
        return non_negative_int(int(raw), name)

    def text(self, name: str) -> str | None:
        return self.q.get(name)

    def bytes(self, name: str) -> bytes | None:
        v = self.q.get(name)
        return None if v is None else v.encode("utf-8", "surrogatepass")

    def client_id(self) -> bytes | None:
        """?request_id=<hex>: the client's idempotency key (see the README)."""
        raw = self.q.get("request_id")
        if raw is None:
            return None
        try:
            cid = bytes.fromhex(raw)
        except ValueError:
            raise bad_request("request_id must be hex") from None
        if not 1 <= len(cid) <= MAX_CLIENT_ID:
            raise bad_request(f"request_id must be 1 to {MAX_CLIENT_ID} bytes")
        return cid


def path_key(req: web.Request) -> bytes:
    return req.match_info.get("key", "").encode("utf-8", "surrogatepass")


def path_int(req: web.Request, name: str, what: str) -> int:
    raw = req.match_info.get(name, "")
    try:
        v = int(raw, 0) if len(raw) <= 24 else None
    except ValueError:
        v = None
    if v is None:
        raise bad_request(f"{what} must be an integer")
    return non_negative_int(v, what, positive=True)


def json_object(raw: bytes, required: bool = False) -> dict[str, Any]:
    """A JSON object body (empty body = {} unless `required`)."""
    if not raw.strip():
        if required:
            raise bad_request("a JSON body is required")
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise bad_request(f"malformed JSON body: {e}") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


def only_fields(body: dict[str, Any], allowed: set[str], what: str = "body") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field(s) in {what}: {', '.join(map(str, unknown))}")
