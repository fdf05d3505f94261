"""etcd's gateway error bodies: `{"error","message","code"}` with grpc-gateway statuses.

Clients map the `error` text to exception classes and the HTTP status to retry
decisions, so both must be etcd's exactly; this is the single place that decides them.
"""

from __future__ import annotations

import json
from enum import IntEnum

from aiohttp import web

from raftkv.storage.errors import MvccError


class GrpcStatus(IntEnum):
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


# grpc-gateway v1 runtime.HTTPStatusFromCode
HTTP_STATUS = {
    GrpcStatus.UNKNOWN: 500,
    GrpcStatus.INVALID_ARGUMENT: 400,
    GrpcStatus.NOT_FOUND: 404,
    GrpcStatus.RESOURCE_EXHAUSTED: 429,
    GrpcStatus.FAILED_PRECONDITION: 412,
    GrpcStatus.OUT_OF_RANGE: 400,
    GrpcStatus.UNIMPLEMENTED: 501,
    GrpcStatus.UNAVAILABLE: 503,
    GrpcStatus.UNAUTHENTICATED: 401,
}

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
    "Access-Control-Allow-Headers": "accept, content-type, authorization",
}
RPC_HEADERS = {**CORS_HEADERS, "Grpc-Metadata-Content-Type": "application/grpc"}

MSG_AUTH_NOT_ENABLED = "etcdserver: authentication is not enabled"
MSG_NO_SPACE = "etcdserver: mvcc: database space exceeded"
MSG_TOO_MANY_OPS = "etcdserver: too many operations in txn request"
MSG_KEY_NOT_FOUND = "etcdserver: key not found"
MSG_NO_LEADER = "etcdserver: no leader"
MSG_TIMEOUT = "etcdserver: request timed out"


class EtcdError(Exception):
    """A gRPC status the gateway turns into etcd's JSON error body."""

    def __init__(self, code: GrpcStatus, message: str, decode: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.decode = decode  # raised by the gateway while decoding, before the RPC

    @classmethod
    def from_mvcc(cls, e: MvccError) -> EtcdError:
        return cls(GrpcStatus(int(e.grpc_code)), e.message)

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> bytes:
        return json.dumps(
            {"error": self.message, "message": self.message, "code": int(self.code)},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")

    async def respond(self, req: web.Request) -> web.StreamResponse:
        """grpc-gateway's HTTPError, framed as etcd frames it: a request that did not
        decode gets a Content-Length answer; an error from the RPC itself is chunked.
        Neither carries Grpc-Metadata-Content-Type."""
        if self.decode:
            return web.Response(
                status=self.status,
                body=self.body(),
                headers={**CORS_HEADERS, "Content-Type": "application/json"},
            )
        resp = web.StreamResponse(
            status=self.status,
            headers={
                **CORS_HEADERS,
                "Content-Type": "application/json",
                "Trailer": "Grpc-Trailer-Content-Type",
            },
        )
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        await resp.write(self.body())
        await resp.write_eof()
        return resp


def text_response(status: int, text: str) -> web.Response:
    """Go's http.Error: text/plain with nosniff (404 / 405 for unrouted requests)."""
    return web.Response(
        status=status,
        body=text.encode(),
        headers={
            **CORS_HEADERS,
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )
