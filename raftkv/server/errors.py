"""Mapping of every failure to a JSON error body with the right status.

Client input never produces a 500: malformed input is 400, state-machine refusals map
by their gRPC code, and anything about availability is 503 with Retry-After.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from raftkv.storage.errors import GrpcCode, MvccError

_MVCC_STATUS = {
    GrpcCode.INVALID_ARGUMENT: 400,
    GrpcCode.NOT_FOUND: 404,
    GrpcCode.FAILED_PRECONDITION: 409,
    GrpcCode.RESOURCE_EXHAUSTED: 507,
    GrpcCode.OUT_OF_RANGE: 400,
}


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def error_response(e: ApiError) -> web.Response:
    body: dict[str, Any] = {"error": {"code": e.code, "message": e.message}}
    body.update(e.extra)
    headers = {"Retry-After": "1"} if e.status == 503 else None
    return web.Response(
        status=e.status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def from_mvcc(e: MvccError) -> ApiError:
    status = _MVCC_STATUS.get(e.grpc_code, 400)
    code = type(e).__name__.removesuffix("Error")
    code = "".join("_" + c.lower() if c.isupper() else c for c in code).lstrip("_")
    return ApiError(status, code, e.message)


INT64_MAX = (1 << 63) - 1


def non_negative_int(v: object, name: str, *, positive: bool = False) -> int:
    """A JSON or query integer within etcd's int64 range, or a 400.

    Anything larger would overflow the 8-byte encodings below (an OverflowError
    that surfaced as a 500 before this check existed)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < (1 if positive else 0):
        kind = "a positive" if positive else "a non-negative"
        raise bad_request(f"{name} must be {kind} integer")
    if v > INT64_MAX:
        raise bad_request(f"{name} must be at most {INT64_MAX}")
    return v
