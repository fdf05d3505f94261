"""grpc-gateway v1 / jsonpb mapping rules, as etcd 3.4's gateway applies them.

Why hand-written: clients parse these bodies with protobuf JSON rules, so the
details matter -- int64 as strings, bytes as padded base64 (with Go's exact error
text), enums by name, zero values omitted, Go's JSON error messages.
"""

from __future__ import annotations

import base64
import json
from enum import IntEnum
from typing import Any

from raftkv.server.etcd.errors import EtcdError, GrpcStatus

_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
MAX_INT64 = (1 << 63) - 1
MAX_UINT64 = (1 << 64) - 1


class BigInt(int):
    """An integer literal too long for Python's int() limit: kept as its text, so the
    error names it as Go's decoder would (no int64 holds it anyway)."""

    literal: str

    def __new__(cls, literal: str) -> BigInt:
        obj = super().__new__(cls, 1 << 64 if not literal.startswith("-") else -(1 << 64))
        obj.literal = literal
        return obj


def _parse_int(text: str) -> int:
    return int(text) if len(text) <= 64 else BigInt(text)


_DECODER = json.JSONDecoder(parse_int=_parse_int)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _go_b64_error(src: bytes) -> int | None:
    """Offset Go's base64.StdEncoding reports for bad input, or None if it is valid.

    Mirrors encoding/base64 decodeQuantum: newlines are skipped, padding is strict,
    and trailing data after padding is reported at its own offset.
    """
    si, n = 0, len(src)
    while True:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j
            c = src[si]
            si += 1
            if c in _B64:
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != ord("="):
                return si - 1
            # padding
            if j in (0, 1):
                return si - 1
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    return n
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                return si
            return None


def unb64(v: Any, field: str) -> bytes:
    """A proto `bytes` field; null/absent is empty, a bad string is etcd's 400."""
    if v is None:
        return b""
    if not isinstance(v, str):
        raise invalid(f"json: cannot unmarshal {_go_type(v)} into Go value of type []uint8")
    raw = v.encode("utf-8", "surrogatepass")  # Go keeps each bad escape as 3 bytes too
    err = _go_b64_error(raw)
    if err is not None:
        raise invalid(f"illegal base64 data at input byte {err}")
    return base64.b64decode(raw.replace(b"\n", b"").replace(b"\r", b""))


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def invalid(message: str) -> EtcdError:
    """A request that does not decode (JSON, base64, enum, number syntax)."""
    return EtcdError(GrpcStatus.INVALID_ARGUMENT, message, decode=True)


def rejected(message: str) -> EtcdError:
    """A request that decodes but etcd's server refuses (InvalidArgument)."""
    return EtcdError(GrpcStatus.INVALID_ARGUMENT, message)


def to_int(v: Any, field: str, unsigned: bool = False) -> int:
    """An int64/uint64 field: jsonpb accepts a JSON number or a decimal string, and hands
    the literal to encoding/json, whose error texts are reproduced here."""
    if v is None:
        return 0
    gotype = "uint64" if unsigned else "int64"
    if isinstance(v, bool):
        raise invalid(f"json: cannot unmarshal bool into Go value of type {gotype}")
    if isinstance(v, list | dict):
        raise invalid(f"json: cannot unmarshal {_go_type(v)} into Go value of type {gotype}")
    literal = v if isinstance(v, str) else (v.literal if isinstance(v, BigInt) else json.dumps(v))
    if isinstance(v, str):
        if len(v) > 4096:
            raise invalid(
                f"json: cannot unmarshal number {v[:64]}... into Go value of type {gotype}"
            )
        try:
            parsed = _DECODER.decode(v)
        except ValueError:
            raise invalid(_go_message(v, _decode_error(v))) from None
        if not isinstance(parsed, int | float) or isinstance(parsed, bool):
            raise invalid(
                f"json: cannot unmarshal {_go_type(parsed)} into Go value of type {gotype}"
            )
        v = parsed
    lo, hi = (0, MAX_UINT64) if unsigned else (-MAX_INT64 - 1, MAX_INT64)
    if isinstance(v, float) or not lo <= v <= hi:
        raise invalid(f"json: cannot unmarshal number {literal} into Go value of type {gotype}")
    return int(v)


def _decode_error(text: str) -> json.JSONDecodeError:
    try:
        _DECODER.decode(text)
    except json.JSONDecodeError as e:
        return e
    return json.JSONDecodeError("Expecting value", text, 0)


def to_bool(v: Any, field: str) -> bool:
    if v is None:
        return False
    if not isinstance(v, bool):
        raise invalid(f"json: cannot unmarshal {_go_type(v)} into Go value of type bool")
    return v


def to_enum(v: Any, enum: type[IntEnum], proto_name: str) -> Any:
    """An enum field given by name or number (jsonpb accepts both)."""
    if v is None:
        return enum(0)
    if isinstance(v, str):
        if v in enum.__members__:
            return enum[v]
        raise invalid(f'unknown value "{v}" for enum {proto_name}')
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return enum(v)
        except ValueError:
            raise invalid(f"unknown value {v} for enum {proto_name}") from None
    raise invalid(f"unknown value {json.dumps(v)} for enum {proto_name}")


def obj(v: Any) -> dict[str, Any]:
    """A nested message: null/absent is the empty message."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise invalid(
            f"json: cannot unmarshal {_go_type(v)} into Go value of type "
            "map[string]*json.RawMessage"
        )
    return v


def arr(v: Any) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise invalid(
            f"json: cannot unmarshal {_go_type(v)} into Go value of type []json.RawMessage"
        )
    return v


# --- Go's encoding/json error texts ----------------------------------------------------


def _quote_char(c: str) -> str:
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return f"'{c}'"


def decode_one(buf: str, pos: int) -> tuple[Any, int]:
    """Decode the next JSON value at `pos` (after whitespace): (value, end).

    Raises EtcdError(INVALID_ARGUMENT) with Go's message on malformed input and
    EOFError when only whitespace remains.
    """
    n = len(buf)
    while pos < n and buf[pos] in " \t\r\n":
        pos += 1
    if pos == n:
        raise EOFError
    try:
        return _DECODER.raw_decode(buf, pos)
    except json.JSONDecodeError as e:
        raise invalid(_go_message(buf, e)) from None
    except RecursionError:
        # Go's decoder nests 10,000 deep, Python's about 900: a deeper body is refused
        # as etcd would refuse what it decodes to where that is known (a top-level
        # array is never a request message).
        if buf[pos] == "[":
            raise invalid(
                "json: cannot unmarshal array into Go value of type map[string]*json.RawMessage"
            ) from None
        raise invalid("raftkv: JSON nested too deep") from None


def _go_message(buf: str, e: json.JSONDecodeError) -> str:
    at = e.pos
    while at < len(buf) and buf[at] in " \t\r\n":
        at += 1
    if at >= len(buf) or e.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    c = _quote_char(buf[at])
    msg = e.msg
    if msg.startswith("Expecting value"):
        return f"invalid character {c} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {c} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {c} after object key"
    if msg.startswith("Expecting ',' delimiter"):
        inside = _innermost(buf, at)
        where = "object key:value pair" if inside == "{" else "array element"
        return f"invalid character {c} after {where}"
    if msg.startswith("Extra data"):
        return f"invalid character {c} after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {c} in string literal"
    return f"invalid character {c} looking for beginning of value"


def _innermost(buf: str, upto: int) -> str:
    """'{' or '[': the innermost open container before `upto` (strings skipped)."""
    stack: list[str] = []
    in_str = esc = False
    for ch in buf[:upto]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else "{"


def request_object(raw: bytes) -> dict[str, Any]:
    """A unary request body: the first JSON value (etcd ignores what follows it)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        v, _ = decode_one(text, 0)
    except EOFError:
        return {}
    return obj(v)
