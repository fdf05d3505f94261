"""Cases for etcd's v3 JSON gateway: a table of every route with per-field strategies.

Bodies follow grpc-gateway's jsonpb rules: bytes as base64, int64 as a string or a
number, enums by name or number, proto field names. Every route of
raftkv/server/etcd/routes.py is here (unary, plus the streams watch, lease keepalive,
snapshot and election observe); the disruptive ones are fuzzed only in the bounded
ways safety.py allows.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.jsonenc import BAD_BASE64, INT64_MAX, INT64_MIN, UINT64_MAX, dump, nested
from tests.fuzz.mutate import Draft, finish_request, finish_value, sweep_values
from tests.fuzz.oracle import Case
from tests.fuzz.safety import Safety, is_safe
from tests.fuzz.v1 import http_sweep

S = st.SearchStrategy
KEY_POOL = [b"fuzz/a", b"fuzz/b", b"fuzz/", b"fuzz/\xff\x00", b"", b"\x00", b"fuzz/" + b"k" * 300]


@dataclass
class V3Pools:
    """Lease ids the fixture granted (so lock and campaign can succeed), and the ports
    it holds (the only peer URLs a member add may name)."""

    lease_ids: list[int]
    reserved_ports: list[int] = field(default_factory=lambda: [1])


@dataclass(frozen=True)
class F:
    """One proto field (or message) of a request, as jsonpb writes it."""

    kind: str  # bytes i64 u64 lease bool enum choice msg oneof list text urls name
    names: tuple[Any, ...] = ()  # enum names, or the values of a choice
    fields: tuple[tuple[str, F], ...] = ()  # msg members, or oneof alternatives
    item: F | None = None  # list element
    lo: int = -5
    hi: int = 60


B, T, U, L, TXT = F("bytes"), F("bool"), F("u64"), F("lease"), F("text")
N = F("i64")  # an int64


def E(*names: str) -> F:
    return F("enum", names=names)


def M(**fields: F) -> F:
    return F("msg", fields=tuple(fields.items()))


def A(item: F) -> F:
    return F("list", item=item)


def ONEOF(**alts: F) -> F:
    return F("oneof", fields=tuple(alts.items()))


RANGE = M(
    key=B,
    range_end=B,
    limit=N,
    revision=N,
    sort_order=E("NONE", "ASCEND", "DESCEND"),
    sort_target=E("KEY", "VERSION", "CREATE", "MOD", "VALUE"),
    serializable=T,
    keys_only=T,
    count_only=T,
    min_mod_revision=N,
    max_mod_revision=N,
    min_create_revision=N,
    max_create_revision=N,
)
PUT = M(key=B, value=B, lease=L, prev_kv=T, ignore_value=T, ignore_lease=T)
DELETE = M(key=B, range_end=B, prev_kv=T)
COMPARE = M(
    result=E("EQUAL", "GREATER", "LESS", "NOT_EQUAL"),
    target=E("VERSION", "CREATE", "MOD", "VALUE", "LEASE"),
    key=B,
    version=N,
    create_revision=N,
    mod_revision=N,
    value=B,
    lease=L,
    range_end=B,
)


def _txn(depth: int) -> F:
    alts = {"request_put": PUT, "request_range": RANGE, "request_delete_range": DELETE}
    if depth:
        alts["request_txn"] = _txn(depth - 1)
    op = ONEOF(**alts)
    return M(compare=A(COMPARE), success=A(op), failure=A(op))


TXN = _txn(2)
WATCH = ONEOF(
    create_request=M(
        key=B,
        range_end=B,
        start_revision=N,
        progress_notify=T,
        filters=A(E("NOPUT", "NODELETE")),
        prev_kv=T,
        watch_id=N,
        fragment=T,
    ),
    cancel_request=M(watch_id=N),
    progress_request=M(),
)
LEADER_KEY = M(name=B, key=B, rev=N, lease=L)
AUTH = M(
    name=TXT,
    password=TXT,
    role=TXT,
    user=TXT,
    key=B,
    range_end=B,
    perm=M(permType=E("READ", "WRITE", "READWRITE"), key=B, range_end=B),
)


def strategy(f: F, p: V3Pools) -> S[Any]:
    """Mostly valid values of the field, with jsonpb's alternative spellings."""
    if f.kind == "bytes":
        raw = st.one_of(st.sampled_from(KEY_POOL), st.binary(max_size=12))
        good = raw.map(lambda b: base64.b64encode(b).decode())
        return st.one_of(good, good, good, st.none(), st.sampled_from(BAD_BASE64))
    if f.kind == "i64":
        n = st.one_of(st.integers(f.lo, f.hi), st.sampled_from([INT64_MAX, INT64_MIN, 0]))
        return st.one_of(n, n.map(str))
    if f.kind == "u64":
        n = st.one_of(st.integers(0, UINT64_MAX), st.sampled_from([0, 1, UINT64_MAX]))
        return st.one_of(n, n.map(str))
    if f.kind == "lease":
        ids = st.one_of(st.sampled_from(p.lease_ids), st.integers(-3, 3), st.integers(0, 1 << 40))
        return st.one_of(ids, ids.map(str))
    if f.kind == "bool":
        return st.booleans()
    if f.kind == "enum":
        return st.one_of(st.sampled_from(f.names), st.integers(0, len(f.names) - 1))
    if f.kind == "choice":
        return st.sampled_from(f.names)
    if f.kind == "text":
        return st.text(max_size=6)
    if f.kind == "urls":
        host = st.sampled_from(["127.0.0.1", "localhost", "[::1]"])
        ports = [str(x) for x in p.reserved_ports]
        port = st.one_of(st.sampled_from(ports), st.sampled_from(["99999", "0", "x", ""]))
        url = st.builds(lambda h, pt: f"http://{h}:{pt}", host, port)
        return st.lists(st.one_of(url, st.text(max_size=6)), max_size=2)
    if f.kind == "name":
        # Mostly fresh names: a lock or campaign on a name an earlier case still holds
        # blocks by design (that is etcd's semantics), which costs a whole window.
        fresh = st.binary(min_size=8, max_size=8).map(lambda b: base64.b64encode(b).decode())
        return st.one_of(fresh, fresh, fresh, strategy(B, p))
    if f.kind == "list":
        assert f.item is not None
        return st.lists(strategy(f.item, p), max_size=3)
    if f.kind == "oneof":
        alts = [strategy(sub, p).map(lambda v, k=k: {k: v}) for k, sub in f.fields]
        return st.one_of(*alts, st.just({}))
    return st.fixed_dictionaries({}, optional={k: strategy(sub, p) for k, sub in f.fields})


def canonical(f: F, p: V3Pools) -> Any:
    """One valid value with every field present: the base of the per-field sweep."""
    if f.kind in ("bytes", "name"):
        return base64.b64encode(b"fuzz/sweep").decode()
    if f.kind == "i64":
        return "1"
    if f.kind == "u64":
        return "1"
    if f.kind == "lease":
        return str(p.lease_ids[0])
    if f.kind == "bool":
        return True
    if f.kind in ("enum", "choice"):
        return f.names[0]
    if f.kind == "text":
        return "fuzz"
    if f.kind == "urls":
        return [f"http://127.0.0.1:{p.reserved_ports[0]}"]
    if f.kind == "list":
        assert f.item is not None
        return [canonical(f.item, p)]
    if f.kind == "oneof":
        k, sub = f.fields[0]
        return {k: canonical(sub, p)}
    return {k: canonical(sub, p) for k, sub in f.fields}


@dataclass(frozen=True)
class Route:
    path: str  # without the /v3 prefix
    body: F
    kind: str = "unary"  # "unary", "stream" or "blocking"
    messages: bool = False  # a client stream: the body is several JSON messages


ROUTES: list[Route] = [
    Route("/kv/range", RANGE),
    Route("/kv/put", PUT),
    Route("/kv/deleterange", DELETE),
    Route("/kv/txn", TXN),
    Route("/kv/compaction", M(revision=F("i64", lo=-3, hi=20), physical=T)),
    Route("/lease/grant", M(TTL=F("i64", lo=-3, hi=120), ID=L)),
    Route("/lease/revoke", M(ID=L)),
    Route("/lease/timetolive", M(ID=L, keys=T)),
    Route("/lease/leases", M()),
    Route("/kv/lease/revoke", M(ID=L)),
    Route("/kv/lease/timetolive", M(ID=L, keys=T)),
    Route("/kv/lease/leases", M()),
    Route("/lease/keepalive", M(ID=L), "stream", messages=True),
    Route("/watch", WATCH, "stream", messages=True),
    Route("/maintenance/status", M()),
    Route("/maintenance/hash", M()),
    Route(
        "/maintenance/alarm",
        M(
            action=F("choice", names=("GET", "DEACTIVATE", 0, 2, "ACTIVATE", 1)),
            memberID=U,
            alarm=F("choice", names=("NONE", 0, "NOSPACE", "CORRUPT", 1, 2)),
        ),
    ),
    Route("/maintenance/defragment", M()),
    Route("/maintenance/snapshot", M(), "stream"),
    Route("/maintenance/transfer-leadership", M(targetID=U)),
    Route("/cluster/member/list", M(linearizable=T)),
    Route(
        "/cluster/member/add",
        M(peerURLs=F("urls"), isLearner=F("choice", names=(True, True, False))),
    ),
    Route("/cluster/member/remove", M(ID=U)),
    Route("/cluster/member/update", M(ID=U, peerURLs=F("urls"))),
    Route("/cluster/member/promote", M(ID=U)),
    Route("/lock/lock", M(name=F("name"), lease=L), "blocking"),
    Route("/lock/unlock", M(key=B)),
    Route("/election/campaign", M(name=F("name"), lease=L, value=B), "blocking"),
    Route("/election/proclaim", M(leader=LEADER_KEY, value=B)),
    Route("/election/leader", M(name=B)),
    Route("/election/resign", M(leader=LEADER_KEY)),
    Route("/election/observe", M(name=B), "stream"),
    *[
        Route(f"/auth/{rpc}", AUTH)
        for rpc in (
            "enable",
            "disable",
            "authenticate",
            "user/add",
            "user/get",
            "user/list",
            "user/delete",
            "user/changepw",
            "user/grant",
            "user/revoke",
            "role/add",
            "role/get",
            "role/list",
            "role/delete",
            "role/grant",
            "role/revoke",
        )
    ],
]
# Paths that are not RPCs: grpc-gateway's 404, Go's 404, and /version (GET only).
OTHER = [
    ("POST", "/v3/nope"),
    ("POST", "/v3/kv"),
    ("POST", "/v3/kv/range/extra"),
    ("POST", "/v3alpha/kv/range"),
    ("POST", "/V3/kv/range"),
    ("GET", "/version"),
    ("POST", "/version"),
    ("OPTIONS", "/v3/kv/put"),
]
DEEP_TXN = [
    nested('{"success":[{"request_txn":', "}]}", n, "{}") for n in (64, 499, 500, 1000, 3000)
]
V3_HOSTILE = st.sampled_from(
    [*BAD_BASE64, "-1", "9223372036854775808", "1e3", " 1", "0x10", "NaN", "18446744073709551616"]
)


@st.composite
def _case(draw: Any, route: Route, pools: V3Pools, members: int) -> Case:
    prefix = draw(st.sampled_from(["/v3", "/v3", "/v3", "/v3beta"]))
    d = Draft("POST", (prefix + route.path).encode())
    names: list[str] = []
    if route.messages:
        msgs = draw(st.lists(strategy(route.body, pools), min_size=0, max_size=3))
        if msgs and draw(st.booleans()):
            i = draw(st.integers(0, len(msgs) - 1))
            msgs[i], names = finish_value(draw, msgs[i], V3_HOSTILE, names)
        sep = draw(st.sampled_from([b"\n", b"", b" "]))
        parts = [dump(m) for m in msgs]
        d.body = sep.join(b for b, _ in parts)
        if len(parts) == 1:
            d.body_expr = parts[0][1]
    else:
        value = draw(strategy(route.body, pools))
        value, names = finish_value(draw, value, V3_HOSTILE, names)
        d.set_json(value)
        if route.path == "/kv/txn" and draw(st.integers(0, 9)) == 0:
            d.set_json(draw(st.sampled_from(DEEP_TXN)))
            names.append("deep-txn")
    if draw(st.booleans()):
        d.headers.append((b"Content-Type", b"application/json"))
    d.mutations = names
    d = finish_request(draw, d, [])
    return Case(
        "v3",
        f"POST /v3{route.path}",  # /v3beta is the same RPC: one counter
        d.request(),
        kind=route.kind,
        member=draw(st.integers(0, members - 1)),
        mutations=tuple(d.mutations),
    )


@st.composite
def _other(draw: Any, members: int) -> Case:
    method, path = draw(st.sampled_from(OTHER))
    d = Draft(method, path.encode())
    d.set_json(draw(st.sampled_from([{}, {"key": "Zm9v"}])))
    d = finish_request(draw, d, [])
    # /V3/... and other paths outside the gateway's prefixes are the native app's.
    gateway = path.startswith(("/v3/", "/v3beta/", "/v3alpha/", "/version"))
    return Case(
        "v3" if gateway else "v1",
        "* <unrouted>",
        d.request(),
        member=draw(st.integers(0, members - 1)),
        mutations=tuple(d.mutations),
    )


def cases(
    pools: V3Pools,
    net: Safety,
    members: int,
    *,
    kinds: tuple[str, ...] = ("unary", "blocking"),
    routes: list[Route] | None = None,
    other: bool = True,
) -> S[Case]:
    """Cases over the table's routes of the given kinds, safe to send."""
    chosen = [r for r in routes or ROUTES if r.kind in kinds]
    auth = [r for r in chosen if r.path.startswith("/auth/")]
    strategies = []
    for r in chosen:
        if r not in auth:
            strategies += [_case(r, pools, members)] * WEIGHTS.get(r.path, 1)
    if auth:  # sixteen RPCs with one behaviour: one share of the budget
        strategies.append(st.sampled_from(auth).flatmap(lambda r: _case(r, pools, members)))
    if other:
        strategies.append(_other(members))
    return st.one_of(strategies).filter(lambda c: is_safe(c.request, net))


WEIGHTS = {"/kv/txn": 6, "/kv/range": 3, "/kv/put": 3, "/kv/deleterange": 2, "/watch": 2}


def sweep(pools: V3Pools, net: Safety, members: int, kinds: tuple[str, ...]) -> list[Case]:
    """The deterministic corpus: every probe in every field of every route's canonical
    body (mutate.PROBES), sent before the random cases."""
    out = []
    for route in ROUTES:
        if route.kind not in kinds:
            continue
        values = sweep_values(canonical(route.body, pools))
        if route.path.startswith("/auth/") and route.path != "/auth/authenticate":
            values = values[:1]  # sixteen RPCs, one handler: sweep one, touch the rest
        for i, (label, value) in enumerate(values):
            d = Draft("POST", b"/v3" + route.path.encode())
            d.set_json(value)
            case = Case(
                "v3",
                f"POST /v3{route.path}",
                d.request(),
                kind=route.kind,
                member=i % members,
                mutations=("sweep", label),
            )
            if is_safe(case.request, net):
                out.append(case)
        if route.path == "/kv/put":  # the HTTP-layer probes, less the slow hang (v1 has it)
            body = canonical(route.body, pools)
            label = f"POST /v3{route.path}"
            probes = http_sweep("v3", label, "POST", b"/v3/kv/put", body, members)
            out += [c for c in probes if "deflate" not in c.mutations[-1]]
    return out
