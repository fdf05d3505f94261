"""JSON bodies that json.dumps cannot write, and the hostile values that need them.

A body is a JSON-like Python value in which `Raw` pieces stand for text inserted
verbatim (a lone surrogate escape, a 5,000-digit literal, invalid UTF-8, 2,000 levels
of nesting) and `DupObj` for an object with repeated member names. `dump` turns it
into bytes plus, for big bodies, a Python expression that rebuilds them, so a
reproducer stays printable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
UINT64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class Raw:
    """JSON text inserted as is; `expr` rebuilds it in a reproducer when it is long."""

    text: bytes
    expr: str | None = None

    def __repr__(self) -> str:
        return f"Raw({self.expr or repr(self.text)})"


@dataclass(frozen=True)
class DupObj:
    """A JSON object whose member names may repeat (what a dict cannot hold)."""

    pairs: tuple[tuple[str, Any], ...]


def _parts(v: Any, out: list[bytes | Raw], ascii_only: bool) -> None:
    if isinstance(v, Raw):
        out.append(v)
    elif v is None or isinstance(v, bool | int | float | str):
        out.append(json.dumps(v, ensure_ascii=ascii_only).encode("utf-8"))
    elif isinstance(v, list | tuple):
        out.append(b"[")
        for i, x in enumerate(v):
            if i:
                out.append(b",")
            _parts(x, out, ascii_only)
        out.append(b"]")
    elif isinstance(v, dict | DupObj):
        items = v.pairs if isinstance(v, DupObj) else tuple(v.items())
        out.append(b"{")
        for i, (k, x) in enumerate(items):
            if i:
                out.append(b",")
            out.append(json.dumps(k, ensure_ascii=ascii_only).encode("utf-8") + b":")
            _parts(x, out, ascii_only)
        out.append(b"}")
    else:
        raise TypeError(f"not a JSON body value: {type(v).__name__}")


def dump(v: Any, ascii_only: bool = False) -> tuple[bytes, str | None]:
    """(bytes, expr): expr is None unless the body holds a Raw piece with its own expr."""
    parts: list[bytes | Raw] = []
    _parts(v, parts, ascii_only)
    merged: list[bytes | Raw] = []
    for p in parts:
        if isinstance(p, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] += p
        else:
            merged.append(p)
    body = b"".join(p.text if isinstance(p, Raw) else p for p in merged)
    if not any(isinstance(p, Raw) and p.expr for p in merged):
        return body, None
    expr = " + ".join((p.expr or repr(p.text)) if isinstance(p, Raw) else repr(p) for p in merged)
    return body, expr


def nested(open_: str, close: str, depth: int, inner: str = "") -> Raw:
    """`open_ * depth + inner + close * depth`, with the expression that says so."""
    text = (open_ * depth + inner + close * depth).encode()
    expr = f"{open_.encode()!r} * {depth} + {inner.encode()!r} + {close.encode()!r} * {depth}"
    return Raw(text, f"({expr})")


def digits(n: int, sign: str = "") -> Raw:
    """An integer literal of n digits: beyond 4,300 Python refuses to convert it."""
    return Raw((sign + "9" * n).encode(), f"({sign.encode()!r} + b'9' * {n})")


LONE_SURROGATES = [
    Raw(b'"\\ud800"'),
    Raw(b'"a\\udfffb"'),
    Raw(b'"\\udc00\\ud800"'),
    Raw(b'"\\uD83D"'),
]
BAD_UTF8_STRINGS = [
    Raw(b'"\xff\xfe"'),
    Raw(b'"\xc0\xaf"'),  # overlong "/"
    Raw(b'"\xed\xa0\x80"'),  # a surrogate encoded as UTF-8 (CESU-8)
    Raw(b'"a\x80"'),
]
BAD_NUMBERS = [
    digits(5000),
    digits(4301, "-"),
    Raw(b"1e400"),
    Raw(b"-1e400"),
    Raw(b"NaN"),
    Raw(b"Infinity"),
    Raw(b"-Infinity"),
    Raw(b"01"),
    Raw(b"1."),
    Raw(b"+1"),
    Raw(b"0x10"),
    Raw(b"1_000"),
]
BIG_INTS = [
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    UINT64_MAX,
    UINT64_MAX + 1,
    10**30,
    -(10**30),
    -1,
    0,
    1.5,
    -0.0,
    1e308,
    2**53 + 1,
]
WRONG_TYPES: list[Any] = [True, False, None, "", "abc", "1", "-1", [], {}, [1], {"a": 1}, [[]]]
DEEP = [
    nested("[", "]", 2000),
    nested('{"a":', "}", 2000, "1"),
    nested("[", "]", 1000),
    nested("[", "]", 100_000),
    Raw(b"[" * 50_000, "(b'[' * 50000)"),  # deep and never closed
]
ODD_STRINGS: list[Any] = [
    "\x00",
    "\u2028\u2029",
    "\ufeff",
    "a" * 70_000,
    "\U0001f984" * 3,
    "\\",
    '"',
    "%00",
    "../../etc/passwd",
    "\u202e",
]


def hostile_values() -> st.SearchStrategy[Any]:
    """Any value a JSON field should never make the server fail on."""
    # The families that broke raftkv before (surrogates, huge literals, nesting) get
    # a double share.
    return st.one_of(
        st.sampled_from(LONE_SURROGATES),
        st.sampled_from(LONE_SURROGATES),
        st.sampled_from(BAD_UTF8_STRINGS),
        st.sampled_from(BAD_NUMBERS),
        st.sampled_from(BIG_INTS),
        st.sampled_from(BIG_INTS),
        st.sampled_from(WRONG_TYPES),
        st.sampled_from(DEEP),
        st.sampled_from(ODD_STRINGS),
        st.integers(min_value=-(10**20), max_value=10**20),
    )


BAD_BASE64 = ["=", "A", "AB", "AB=", "ABC=", "AB==x", "!!!!", "QQ==QQ==", "é", "-_-_", "QU JD"]
