"""Cases for the native /v1 face, derived from the live `GET /v1/openapi.json`.

Paths, methods, query parameters and body schemas come from the document the server
serves; a few field hints (which keys exist, which lease ids were granted, which URLs
are safe to hand the cluster) keep enough cases valid to get past the first check.
Routes the document does not describe (health, metrics, the router's own 404/405)
are added from a hand-kept list, and the summary says which ones the document missed.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.jsonenc import INT64_MAX, nested
from tests.fuzz.mutate import (
    HTTP_PROBE_EXPR,
    HTTP_PROBES,
    Draft,
    enc,
    finish_request,
    finish_value,
    sweep_values,
)
from tests.fuzz.oracle import Case
from tests.fuzz.safety import Safety, is_safe

# Every /v1 (and unversioned) route raftkv's router registers (raftkv/server/app.py,
# members_api.py, openapi.py): the fuzzer covers each, documented or not.
KNOWN_ROUTES = [
    ("GET", "/v1/kv/{key}"),
    ("PUT", "/v1/kv/{key}"),
    ("POST", "/v1/kv/{key}"),
    ("DELETE", "/v1/kv/{key}"),
    ("POST", "/v1/txn"),
    ("POST", "/v1/compact"),
    ("POST", "/v1/lease/grant"),
    ("POST", "/v1/lease/{id}/keepalive"),
    ("DELETE", "/v1/lease/{id}"),
    ("GET", "/v1/lease/{id}"),
    ("GET", "/v1/leases"),
    ("GET", "/v1/watch/{key}"),
    ("GET", "/v1/status"),
    ("GET", "/v1/members"),
    ("POST", "/v1/members"),
    ("POST", "/v1/members/{id}/promote"),
    ("DELETE", "/v1/members/{id}"),
    ("POST", "/v1/leader/transfer"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/health"),
    ("GET", "/readyz"),
    ("GET", "/livez"),
    ("GET", "/metrics"),
]
STREAMS = {("GET", "/v1/watch/{key}")}
# Paths no route matches, and methods no route takes: the router's own 404 / 405.
UNROUTED = [
    ("GET", "/v1/nope"),
    ("GET", "/v1"),
    ("GET", "/"),
    ("POST", "/v1/kv"),
    ("GET", "/v1/lease/"),
    ("POST", "/v1/members/77777777/promote/extra"),
    ("DELETE", "/v1/txn"),
    ("PATCH", "/v1/kv/fuzz/a"),
    ("PUT", "/v1/status"),
    ("GET", "/debug/status"),
]

KEYS = [
    "fuzz/a",
    "fuzz/b",
    "fuzz/",
    "fuzz/ключ",
    "fuzz/a b",
    "fuzz/?#%&=+",
    "fuzz/\U0001f984",
    "",
    "\x00",
    "fuzz/" + "k" * 300,
]
HOSTILE_KEYS = [
    b"a" * 9000,  # past aiohttp's 8,190-byte request line
    b"%FF%FE",
    b"%00",
    b"%ED%A0%80",  # a UTF-8-encoded surrogate
    b"\xff",
    b"..%2F..",
    b"%",
    b"%zz",
    b"%2e%2e/%2e%2e",
    b"a//b",
    b"~" * 3000,
    b"%C0%AF",
]
HOSTILE_IDS = [
    "-1",
    "0",
    "abc",
    "0x10",
    "1e3",
    "99999999999999999999",
    "9" * 5000,
    "%FF",
    "%20" + "7" * 9,
    "",
    "0b1" + "0" * 30,
    "1_000_000_000_000",
    "-9223372036854775808",
    str(INT64_MAX),
    str(INT64_MAX + 1),
]


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    body_schema: dict[str, Any] | None = None
    body_media: str | None = None
    documented: bool = True

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def kind(self) -> str:
        return "stream" if (self.method, self.template) in STREAMS else "unary"


def operations(doc: dict[str, Any]) -> list[Operation]:
    """Every operation of the OpenAPI document, plus the known routes it misses."""
    ops: list[Operation] = []
    for path, item in doc.get("paths", {}).items():
        for method, spec in item.items():
            query = tuple(
                (p["name"], p.get("schema", {}))
                for p in spec.get("parameters", [])
                if p.get("in") == "query"
            )
            schema = media = None
            content = spec.get("requestBody", {}).get("content", {})
            if content:
                media = next(iter(content))
                schema = content[media].get("schema", {})
            ops.append(Operation(method.upper(), path, query, schema, media))
    return ops


def missing_routes(ops: list[Operation], known: list[tuple[str, str]]) -> list[Operation]:
    have = {(o.method, o.template) for o in ops}
    return [Operation(m, p, documented=False) for m, p in known if (m, p) not in have]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Pools:
    """Values the cluster knows: granted lease ids, and ports the fixture holds."""

    lease_ids: list[int] = field(default_factory=lambda: [1])
    reserved_ports: list[int] = field(default_factory=lambda: [1])

    def keys(self) -> st.SearchStrategy[str]:
        return st.one_of(st.sampled_from(KEYS), st.text(max_size=12))

    def leases(self) -> st.SearchStrategy[int]:
        return st.one_of(
            st.sampled_from(self.lease_ids), st.integers(-3, 3), st.integers(0, 1 << 40)
        )

    def urls(self) -> st.SearchStrategy[str]:
        host = st.sampled_from(["127.0.0.1", "localhost", "[::1]", ""])
        port = st.one_of(
            st.sampled_from([str(p) for p in self.reserved_ports]),
            st.sampled_from(["99999", "0", "65536", "-1", "", "abc", "9" * 30, "80a"]),
        )
        scheme = st.sampled_from(["http://", "http://", "https://", "ftp://", "", "http:/"])
        tail = st.sampled_from(["", "/", "/path", "?q=1", "#f"])
        return st.builds(lambda s, h, p, t: f"{s}{h}:{p}{t}", scheme, host, port, tail)

    def canonical(self) -> dict[str, Any]:
        """Property values for the sweep's canonical bodies (all safe to send)."""
        return {
            "key": "fuzz/sweep",
            "range_end": "fuzz/sweeq",
            "key_b64": b64(b"fuzz/sweep"),
            "value_b64": b64(b"v"),
            "lease": self.lease_ids[0],
            "ttl": 10,
            "id": self.lease_ids[0],
            "peer_url": f"http://127.0.0.1:{self.reserved_ports[0]}",
            "client_url": f"http://127.0.0.1:{self.reserved_ports[-1]}",
            "to": 77_777_777,
            "revision": 1,
            "name": "fuzz-sweep",
        }

    def hints(self) -> dict[str, st.SearchStrategy[Any]]:
        """Strategies by property name, preferred over the bare schema type."""
        return {
            "key": self.keys(),
            "range_end": self.keys(),
            "key_b64": st.binary(max_size=12).map(b64),
            "value_b64": st.binary(max_size=12).map(b64),
            "lease": self.leases(),
            "ttl": st.integers(0, 120),
            "id": st.one_of(st.just(0), self.leases()),
            "peer_url": self.urls(),
            "client_url": st.one_of(st.none(), self.urls()),
            "to": st.integers(10_000_000, INT64_MAX),
            "revision": st.integers(1, 20),
            "name": st.text(min_size=1, max_size=10),
        }


class SchemaGen:
    """JSON Schema (the subset pydantic emits) -> Hypothesis strategy."""

    def __init__(self, doc: dict[str, Any], hints: dict[str, st.SearchStrategy[Any]]) -> None:
        self.defs = doc.get("components", {}).get("schemas", {})
        self.hints = hints

    def of(self, s: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        if "$ref" in s:
            return self.of(self.defs[s["$ref"].rsplit("/", 1)[-1]], depth)
        for key in ("anyOf", "oneOf"):
            if key in s:
                return st.one_of([self.of(x, depth) for x in s[key]])
        if "enum" in s:
            return st.sampled_from(s["enum"])
        if "const" in s:
            return st.just(s["const"])
        t = s.get("type")
        if t == "object":
            return self._object(s, depth)
        if t == "array":
            items = self.of(s.get("items", {}), depth + 1) if depth < 3 else st.nothing()
            return st.lists(items, max_size=3)
        if t == "integer":
            lo = s.get("minimum", s.get("exclusiveMinimum", -1 - INT64_MAX) + 1)
            # Mostly valid; sometimes just past the bounds or the int64 range.
            edge = st.sampled_from([lo - 1, INT64_MAX + 1, -(1 << 63) - 1])
            return st.one_of(st.integers(lo, INT64_MAX), st.integers(lo, INT64_MAX), edge)
        if t == "number":
            return st.floats(allow_nan=False, allow_infinity=False)
        if t == "string":
            return st.text(min_size=s.get("minLength", 0), max_size=s.get("maxLength", 16))
        if t == "boolean":
            return st.booleans()
        if t == "null":
            return st.none()
        return st.none() | st.integers() | st.text(max_size=4)

    def canonical(self, s: dict[str, Any], canon: dict[str, Any]) -> Any:
        """One valid value with every property present (hints by property name)."""
        if "$ref" in s:
            return self.canonical(self.defs[s["$ref"].rsplit("/", 1)[-1]], canon)
        for key in ("anyOf", "oneOf"):
            if key in s:
                alts = [x for x in s[key] if x.get("type") != "null"] or s[key]
                return self.canonical(alts[0], canon)
        if "enum" in s:
            return s["enum"][0]
        t = s.get("type")
        if t == "object":
            props = s.get("properties", {})
            return {
                k: canon[k] if k in canon else self.canonical(v, canon) for k, v in props.items()
            }
        if t == "array":
            return [self.canonical(s.get("items", {}), canon)]
        if t == "integer":
            return max(1, s.get("minimum", 1), s.get("exclusiveMinimum", 0) + 1)
        if t == "boolean":
            return True
        if t == "null":
            return None
        return "fuzz"

    def _object(self, s: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props = s.get("properties", {})
        required = set(s.get("required", []))

        def prop(name: str, sub: dict[str, Any]) -> st.SearchStrategy[Any]:
            return self.hints[name] if name in self.hints else self.of(sub, depth + 1)

        fixed = {k: prop(k, v) for k, v in props.items() if k in required}
        optional = {k: prop(k, v) for k, v in props.items() if k not in required}
        if not props and s.get("additionalProperties"):
            return st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6))
        return st.fixed_dictionaries(fixed, optional=optional)


def txn_ops(pools: Pools, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Txn operations as the README documents them ({"put": {...}} & co)."""
    keys, flag = pools.keys(), st.booleans()
    put = st.fixed_dictionaries(
        {"key": keys},
        optional={
            "value": st.text(max_size=8),
            "value_b64": st.binary(max_size=8).map(b64),
            "lease": pools.leases(),
            "prev_kv": flag,
            "ignore_value": flag,
            "ignore_lease": flag,
        },
    )
    rng = st.fixed_dictionaries(
        {"key": keys},
        optional={
            "range_end": keys,
            "prefix": flag,
            "revision": st.integers(0, 40),
            "limit": st.integers(0, 5),
            "keys_only": flag,
            "count_only": flag,
        },
    )
    dele = st.fixed_dictionaries(
        {"key": keys}, optional={"range_end": keys, "prefix": flag, "prev_kv": flag}
    )
    ops = [
        put.map(lambda b: {"put": b}),
        rng.map(lambda b: {"range": b}),
        dele.map(lambda b: {"delete": b}),
    ]
    if depth > 0:
        ops.append(txn_body(pools, depth - 1).map(lambda b: {"txn": b}))
    return st.one_of(ops)


def txn_body(pools: Pools, depth: int = 1) -> st.SearchStrategy[dict[str, Any]]:
    keys = pools.keys()
    compare = st.fixed_dictionaries(
        {
            "key": keys,
            "target": st.sampled_from(["VALUE", "VERSION", "CREATE", "MOD", "LEASE"]),
            "result": st.sampled_from(["EQUAL", "NOT_EQUAL", "GREATER", "LESS", "=", "!="]),
        },
        optional={
            "value": st.text(max_size=6),
            "version": st.integers(0, 5),
            "create_revision": st.integers(0, 40),
            "mod_revision": st.integers(0, 40),
            "lease": pools.leases(),
            "range_end": keys,
            "prefix": st.booleans(),
        },
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "compare": st.lists(compare, max_size=3),
            "success": st.lists(txn_ops(pools, depth), max_size=3),
            "failure": st.lists(txn_ops(pools, depth), max_size=3),
        },
    )


# Bodies no schema describes but a route must survive: txn nesting around the depths
# where recursive parsers give up, and JSON nesting past the decoder's recursion limit.
DEEP_TXN = [nested('{"success":[{"txn":', "}]}", n, "{}") for n in (64, 399, 400, 500, 1000, 3000)]


def _query_value(name: str, schema: dict[str, Any], pools: Pools) -> st.SearchStrategy[Any]:
    t = schema.get("type")
    if t == "boolean":
        return st.sampled_from([None, b"", b"true", b"false", b"0", b"1", b"no", b"yes"])
    if name == "lease":
        return pools.leases().map(lambda i: str(i).encode())
    if t == "integer":
        # Mostly valid; sometimes just past the schema's bounds ("almost valid").
        lo = schema.get("minimum", 0)
        bad = [lo - 1, -1, INT64_MAX + 1, "abc", "1.5", "", " 1"]
        return st.one_of(
            st.integers(lo, lo + 60), st.integers(lo, lo + 60), st.sampled_from(bad)
        ).map(lambda i: enc(str(i)))
    if name == "range_end":
        return pools.keys().map(lambda k: enc(k))
    if name == "request_id":
        return st.binary(min_size=1, max_size=130).map(lambda b: b.hex().encode())
    return st.text(max_size=8).map(lambda k: enc(k))


def _path_param(name: str, template: str, pools: Pools) -> st.SearchStrategy[bytes]:
    if name == "key":
        return st.one_of(
            pools.keys().map(lambda k: enc(k, safe="/")),
            st.sampled_from(HOSTILE_KEYS),
        )
    if "/members/" in template:  # never a real member id: see safety.py
        ids = st.integers(10_000_000, INT64_MAX).map(str)
    else:
        ids = st.one_of(
            pools.leases().map(str), pools.leases().map(hex), st.integers(-5, 10**6).map(str)
        )
    return st.one_of(ids, st.sampled_from(HOSTILE_IDS)).map(lambda s: s.encode("latin-1"))


@st.composite
def _case(
    draw: Any,
    op: Operation,
    gen: SchemaGen,
    pools: Pools,
    members: int,
    label: str | None = None,
) -> Case:
    path = op.template.encode()
    for name in re.findall(r"\{(\w+)\}", op.template):
        path = path.replace(
            b"{" + name.encode() + b"}", draw(_path_param(name, op.template, pools))
        )
    d = Draft(op.method, path)
    params = [n for n, _ in op.query]
    for name, schema in op.query:
        if draw(st.integers(0, 3)) == 0:
            d.query.append((name.encode(), draw(_query_value(name, schema, pools))))
    names: list[str] = []
    if op.body_media == "application/json" and op.body_schema is not None:
        value = draw(txn_body(pools) if op.template == "/v1/txn" else gen.of(op.body_schema))
        value, names = finish_value(draw, value, None, names)
        d.set_json(value)
        if op.template == "/v1/txn" and draw(st.integers(0, 9)) == 0:
            d.set_json(draw(st.sampled_from(DEEP_TXN)))
            names.append("deep-txn")
        if draw(st.booleans()):
            d.headers.append((b"Content-Type", b"application/json"))
    elif op.body_media is not None:
        d.body = draw(st.binary(max_size=32))
    d.mutations = names
    if op.kind == "stream" and draw(st.booleans()):
        d.headers.append((b"Accept", b"text/event-stream"))
    d = finish_request(draw, d, params)
    return Case(
        "v1",
        label or op.label,
        d.request(),
        kind=op.kind,
        member=draw(st.integers(0, members - 1)),
        mutations=tuple(d.mutations),
    )


def cases(
    doc: dict[str, Any],
    pools: Pools,
    net: Safety,
    members: int,
    *,
    known: list[tuple[str, str]] | None = None,
    unrouted: list[tuple[str, str]] | None = None,
    streams: bool = False,
) -> st.SearchStrategy[Case]:
    """Cases over every operation (streams only when `streams`), safe to send."""
    ops = operations(doc)
    ops += missing_routes(ops, known or [])
    ops += [Operation(m, p, documented=False) for m, p in unrouted or []]
    ops = [o for o in ops if (o.kind == "stream") == streams]
    gen = SchemaGen(doc, pools.hints())
    routed = [o for o in ops if (o.method, o.template) not in set(unrouted or [])]
    branches = []
    for o in routed:
        # Routes with rich inputs get more of the budget than GET /livez.
        weight = WEIGHTS.get(o.template, 1)
        branches += [_case(o, gen, pools, members)] * weight
    odd = [o for o in ops if (o.method, o.template) in set(unrouted or [])]
    if odd:
        branches.append(
            st.sampled_from(odd).flatmap(lambda o: _case(o, gen, pools, members, "* <unrouted>"))
        )
    return st.one_of(branches).filter(lambda c: is_safe(c.request, net))


WEIGHTS = {"/v1/txn": 6, "/v1/kv/{key}": 2, "/v1/members": 2, "/v1/lease/grant": 2}


CANONICAL_TXN = {
    "compare": [{"key": "fuzz/sweep", "target": "VALUE", "result": "EQUAL", "value": "x"}],
    "success": [{"put": {"key": "fuzz/sweep", "value": "v", "lease": 0, "prev_kv": True}}],
    "failure": [
        {"range": {"key": "fuzz/sweep", "range_end": "fuzz/sweeq", "limit": 1}},
        {"delete": {"key": "fuzz/sweep", "prefix": True}},
        {"txn": {"success": [{"put": {"key": "fuzz/sweep", "value_b64": "dg=="}}]}},
    ],
}
QUERY_PROBES = [b"-1", b"9" * 5000, b"9223372036854775808", b"%ED%A0%80", b"%FF", b"abc"]
KEY_PROBES = [b"%ED%A0%80", b"%FF%FE", b"%00", b"%0A", b"fuzz%2F..%2F..", b"a" * 9000]
ID_PROBES = [b"-1", b"9" * 5000, b"9223372036854775808", b"0x8000000000000000", b"%ED%A0%80"]


def sweep(
    doc: dict[str, Any],
    pools: Pools,
    net: Safety,
    members: int,
    *,
    known: list[tuple[str, str]] | None = None,
    streams: bool = False,
) -> list[Case]:
    """The deterministic corpus: for every operation, its canonical request, then each
    probe alone in each body leaf (mutate.PROBES), each query parameter and each path
    parameter; sent before the random cases."""
    ops = operations(doc)
    ops += missing_routes(ops, known or [])
    gen = SchemaGen(doc, {})
    canon = pools.canonical()
    out: list[Case] = []
    for op in ops:
        if (op.kind == "stream") != streams:
            continue
        params = {
            "key": b"fuzz/sweep",
            "id": b"77777777" if "/members/" in op.template else str(pools.lease_ids[0]).encode(),
        }
        variants: list[tuple[str, dict[str, bytes], list[tuple[bytes, bytes | None]], Any]] = []
        body: Any = None
        if op.body_media == "application/json" and op.body_schema is not None:
            body = (
                CANONICAL_TXN if op.template == "/v1/txn" else gen.canonical(op.body_schema, canon)
            )
        elif op.body_media is not None:
            body = b"v"
        variants.append(("canonical", params, [], body))
        if isinstance(body, dict):
            variants += [(label, params, [], v) for label, v in sweep_values(body)[1:]]
        for name, schema in op.query:
            if schema.get("type") in ("integer", "string"):
                for probe in QUERY_PROBES:
                    variants.append(
                        (f"{probe[:12]!r}@?{name}", params, [(name.encode(), probe)], body)
                    )
        for name in re.findall(r"\{(\w+)\}", op.template):
            for probe in KEY_PROBES if name == "key" else ID_PROBES:
                variants.append((f"{probe[:12]!r}@{{{name}}}", {**params, name: probe}, [], body))
        for i, (label, pp, query, value) in enumerate(variants):
            path = op.template.encode()
            for name, raw in pp.items():
                path = path.replace(b"{" + name.encode() + b"}", raw)
            d = Draft(op.method, path, query=list(query))
            if isinstance(value, bytes):
                d.body = value
            elif value is not None:
                d.set_json(value)
            case = Case(
                "v1",
                op.label,
                d.request(),
                kind=op.kind,
                member=i % members,
                mutations=("sweep", label),
            )
            if is_safe(case.request, net):
                out.append(case)
        if op.template == "/v1/txn":
            out += http_sweep("v1", op.label, op.method, b"/v1/txn", body, members)
    return out


def http_sweep(
    face: str, label: str, method: str, path: bytes, body: Any, members: int
) -> list[Case]:
    """mutate.HTTP_PROBES on one route: framing and headers the HTTP layer must take."""
    out = []
    for i, (name, headers, raw) in enumerate(HTTP_PROBES):
        d = Draft(method, path, headers=list(headers))
        if raw is None:
            d.set_json(body)
        else:
            d.body, d.body_expr = raw, HTTP_PROBE_EXPR.get(name)
        out.append(Case(face, label, d.request(), member=i % members, mutations=("sweep", name)))
    return out
