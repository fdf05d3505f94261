"""Hostile mutations shared by both faces: of a JSON value, and of a whole request.

A case is drawn valid (from the OpenAPI document or the /v3 table), then 0-2
mutations make it almost-valid or hostile. Value mutations edit the JSON body before
it is serialized; request mutations edit the bytes, headers, method, path and query.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from tests.fuzz.client import Request
from tests.fuzz.jsonenc import (
    BAD_NUMBERS,
    BAD_UTF8_STRINGS,
    BIG_INTS,
    DEEP,
    LONE_SURROGATES,
    ODD_STRINGS,
    DupObj,
    dump,
    hostile_values,
)

Draw = Callable[[st.SearchStrategy[Any]], Any]


@dataclass
class Draft:
    """A request being built: path and query still separate, body already bytes."""

    method: str
    path: bytes
    query: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    body_expr: str | None = None
    mutations: list[str] = field(default_factory=list)
    chunked: str | None = None  # "good" or "bad": framing applied last, so it is whole

    def set_json(self, value: Any) -> None:
        self.body, self.body_expr = dump(value)

    def request(self) -> Request:
        target = self.path
        if self.query:
            target += b"?" + b"&".join(k if v is None else k + b"=" + v for k, v in self.query)
        return Request(self.method.encode(), target, tuple(self.headers), self.body, self.body_expr)


def enc(text: str, safe: str = "") -> bytes:
    """Percent-encode for a path segment or query value (UTF-8)."""
    return quote(text, safe=safe).encode("ascii")


# --- value mutations -------------------------------------------------------------------

STRINGY: list[Any] = [*LONE_SURROGATES, *BAD_UTF8_STRINGS, *ODD_STRINGS]
NUMBERY: list[Any] = [*BIG_INTS, *BAD_NUMBERS]


def slots(v: Any, path: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    """Paths to every replaceable position (dict member values, list items)."""
    out: list[tuple[Any, ...]] = []
    if depth > 5:
        return out
    if isinstance(v, dict):
        for k, x in v.items():
            out.append((*path, k))
            out += slots(x, (*path, k), depth + 1)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out.append((*path, i))
            out += slots(x, (*path, i), depth + 1)
    return out


def set_at(v: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(v, dict):
        out = dict(v)
        out[head] = set_at(v[head], rest, new)
        return out
    out_l = list(v)
    out_l[head] = set_at(v[head], rest, new)
    return out_l


def _dicts(v: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [path] if isinstance(v, dict) else []
    if isinstance(v, dict):
        for k, x in v.items():
            out += _dicts(x, (*path, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _dicts(x, (*path, i))
    return out


def get_at(v: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        v = v[p]
    return v


def mutate_value(
    draw: Draw, v: Any, extra: st.SearchStrategy[Any] | None = None
) -> tuple[Any, str]:
    """One hostile edit of a JSON value; returns (value, mutation name)."""
    hostile = hostile_values() if extra is None else st.one_of(hostile_values(), extra)
    kind = draw(
        st.sampled_from(
            [
                "field-hostile",
                "field-hostile",
                "field-hostile",
                "field-unknown",
                "dup-key",
                "top-level",
            ]
        )
    )
    where_all = slots(v)
    if kind == "field-hostile" and where_all:
        # Leaves first, and a value of the leaf's own kind gone wrong half the time:
        # a key with a lone surrogate gets further into a server than a key that is [].
        leaves = [s for s in where_all if not isinstance(get_at(v, s), dict | list)]
        prefer_leaf = draw(st.sampled_from([True, True, True, False]))
        where = draw(st.sampled_from(leaves if leaves and prefer_leaf else where_all))
        leaf = get_at(v, where)
        if isinstance(leaf, str):
            hostile = st.one_of(st.sampled_from(STRINGY), hostile)
        elif isinstance(leaf, int | float) and not isinstance(leaf, bool):
            hostile = st.one_of(st.sampled_from(NUMBERY), hostile)
        return set_at(v, where, draw(hostile)), kind
    dicts = _dicts(v)
    if kind == "field-unknown" and dicts:
        where = draw(st.sampled_from(dicts))
        d = dict(get_at(v, where))
        d[draw(st.sampled_from(["unknown", "", "Key", "key ", "__proto__", "ID"]))] = draw(hostile)
        return set_at(v, where, d), kind
    if kind == "dup-key" and dicts:
        where = draw(st.sampled_from(dicts))
        d = get_at(v, where)
        if d:
            k = draw(st.sampled_from(sorted(d)))
            pairs = (*d.items(), (k, draw(st.one_of(hostile, st.just(d[k])))))
            if draw(st.booleans()):
                pairs = (pairs[-1], *pairs[:-1])
            return set_at(v, where, DupObj(tuple(pairs))), kind
    return draw(st.one_of(hostile, st.sampled_from(DEEP))), "top-level"


# --- request mutations -----------------------------------------------------------------

HOSTILE_QUERY = [
    b"",
    b"abc",
    b"-1",
    b"-9223372036854775809",
    b"1.5",
    b"1e3",
    b"%201",
    b"0x10",
    b"%2B1",
    b"%EF%BC%91",  # fullwidth digit one
    b"99999999999999999999999",
    b"9" * 5000,
    b"true",
    b"%FF",
    b"%00",
    b"%ED%A0%80",
    b"null",
    b"%5B%5D",
]
CONTENT_TYPES = [
    b"text/plain",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=x",
    b"application/json; charset=latin-1",
    b"application/octet-stream",
    b"application/grpc",
    b"",
    b"\xff",
]


def _chunked(body: bytes) -> bytes:
    half = len(body) // 2
    parts = [body[:half], body[half:]]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p) + b"0\r\n\r\n"


def mutate_request(draw: Draw, d: Draft, params: list[str]) -> Draft:
    """One hostile edit of the request's framing, headers, method or query."""
    kind = draw(
        st.sampled_from(
            [
                "body-bytes",
                "content-type",
                "content-encoding",
                "chunked",
                "header-junk",
                "method",
                "query-hostile",
                "query-unknown",
                "query-dup",
                "query-bad-utf8",
                "body-huge",
            ]
        )
    )
    d = replace(d, query=list(d.query), headers=list(d.headers), mutations=[*d.mutations, kind])
    if kind == "body-bytes":
        how = draw(st.sampled_from(["bad-utf8", "truncate", "bom", "trailing", "nul", "empty"]))
        b, e = d.body, d.body_expr
        if how == "bad-utf8":
            at = draw(st.integers(0, len(b)))
            d.body, d.body_expr = b[:at] + b"\xff\xfe" + b[at:], None
        elif how == "truncate" and b:
            d.body, d.body_expr = b[: draw(st.integers(0, len(b) - 1))], None
        elif how == "bom":
            d.body, d.body_expr = b"\xef\xbb\xbf" + b, (f"b'\\xef\\xbb\\xbf' + {e}" if e else None)
        elif how == "trailing":
            d.body, d.body_expr = b + b"}garbage", (f"{e} + b'}}garbage'" if e else None)
        elif how == "nul":
            d.body, d.body_expr = b + b"\x00", (f"{e} + b'\\x00'" if e else None)
        else:
            d.body, d.body_expr = b"", None
        d.mutations[-1] += ":" + how
    elif kind == "content-type":
        d.headers.append((b"Content-Type", draw(st.sampled_from(CONTENT_TYPES))))
    elif kind == "content-encoding":
        coding = draw(st.sampled_from([b"gzip", b"deflate", b"br", b"identity", b"x-bogus"]))
        if coding == b"gzip" and draw(st.booleans()):
            d.body, d.body_expr = gzip.compress(d.body, mtime=0), None  # a real one
        d.headers.append((b"Content-Encoding", coding))
    elif kind == "chunked":
        d.chunked = draw(st.sampled_from(["good", "bad"]))
    elif kind == "header-junk":
        d.headers.append(
            draw(
                st.sampled_from(
                    [
                        (b"X-Junk", b"a" * 9000),
                        (b"X-Bad", b"\xff\xfe"),
                        (b"Expect", b"100-continue"),
                        (b"Accept", b"text/event-stream"),
                        (b"X-Raftkv-Forwarded", b"1"),
                        (b"Content-Length", b"abc"),
                        (b"Bad Name", b"x"),
                        (b"Grpc-Metadata-Foo", b"bar"),
                    ]
                )
            )
        )
    elif kind == "method":
        d.method = draw(
            st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD", "FOO"])
        )
    elif kind == "query-hostile":
        name = draw(st.sampled_from(params or ["x"])).encode()
        d.query = [q for q in d.query if q[0] != name]
        d.query.append((name, draw(st.sampled_from(HOSTILE_QUERY))))
    elif kind == "query-unknown":
        d.query.append((draw(st.sampled_from([b"bogus", b"PREFIX", b"", b"a[b]", b"%00"])), b"1"))
    elif kind == "query-dup" and d.query:
        k, _ = draw(st.sampled_from(d.query))
        d.query.append((k, draw(st.sampled_from(HOSTILE_QUERY))))
    elif kind == "query-bad-utf8":
        d.query.append(draw(st.sampled_from([(b"%FF", b"1"), (b"k", b"\xff"), (b"\xfe", None)])))
    elif kind == "body-huge":
        n = draw(st.sampled_from([1 << 20, (3 << 19) + 1, 3 << 20]))
        d.body, d.body_expr = b'{"k":"' + b"x" * n + b'"}', f"b'{{\"k\":\"' + b'x' * {n} + b'\"}}'"
    return d


def finish_value(
    draw: Draw, value: Any, extra: st.SearchStrategy[Any] | None, names: list[str]
) -> tuple[Any, list[str]]:
    """0-2 value mutations, chosen by Hypothesis (so it can also shrink them away)."""
    n = draw(st.sampled_from([0, 0, 1, 1, 1, 2]))
    for _ in range(n):
        value, name = mutate_value(draw, value, extra)
        names.append(name)
    return value, names


def finish_request(draw: Draw, d: Draft, params: list[str]) -> Draft:
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2]))):
        d = mutate_request(draw, d, params)
    return d


def leaves(v: Any) -> list[tuple[Any, ...]]:
    """Paths to every non-container position of a JSON value."""
    return [p for p in slots(v) if not isinstance(get_at(v, p), dict | list)]


# The sweep: each of these in each leaf of a canonical valid body, one at a time. They
# are the input classes that broke raftkv before; a random run may miss a field.
PROBES: list[tuple[str, Any]] = [
    ("lone-surrogate", LONE_SURROGATES[0]),
    ("5000-digits", BAD_NUMBERS[0]),
    ("int64+1", (1 << 63)),
    ("int64+1-as-string", str(1 << 63)),
    ("minus-one", -1),
    ("minus-one-as-string", "-1"),
]
TOP_PROBES: list[tuple[str, Any]] = [
    ("deep-2000", DEEP[0]),
    ("top-5000-digits", BAD_NUMBERS[0]),
    ("top-lone-surrogate", LONE_SURROGATES[0]),
    ("top-array", []),
]


def sweep_values(base: Any) -> list[tuple[str, Any]]:
    """(label, body): the canonical body, each probe in each leaf, then the top-level
    probes."""
    out: list[tuple[str, Any]] = [("canonical", base)]
    for where in leaves(base):
        at = ".".join(map(str, where))
        out += [(f"{name}@{at}", set_at(base, where, probe)) for name, probe in PROBES]
    return out + TOP_PROBES


# HTTP-layer probes, swept on one route per face (the HTTP layer is shared by all):
# (label, extra headers, body or None for the canonical body, raw path suffix).
HTTP_PROBES: list[tuple[str, list[tuple[bytes, bytes]], bytes | None]] = [
    ("gzip-label-plain-body", [(b"Content-Encoding", b"gzip")], None),
    ("deflate-label-140KB", [(b"Content-Encoding", b"deflate")], b"[" * 70_000 + b"]" * 70_000),
    ("brotli-label", [(b"Content-Encoding", b"br")], None),
    ("bad-header-name", [(b"Bad Name", b"x")], None),
    ("header-9000-bytes", [(b"X-Junk", b"a" * 9000)], None),
    ("content-length-abc", [(b"Content-Length", b"abc")], b""),
    ("text-plain-body", [(b"Content-Type", b"text/plain")], None),
]
HTTP_PROBE_EXPR = {"deflate-label-140KB": "(b'[' * 70000 + b']' * 70000)"}
