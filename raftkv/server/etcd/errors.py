"""etcd's gateway error bodies: `{"error","message","code"}` with grpc-gateway statuses.

Clients map the `error` text to exception classes and the HTTP status to retry
decisions, so both must be etcd's exactly; this is the single place that decides them.
"""

from __future__ import annotations

from enum import IntEnum

from aiohttp import web

from raftkv import errors as E
from raftkv.server.http import cors_headers, dumps


class GrpcStatus(IntEnum):
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


# grpc-gateway v1 runtime.HTTPStatusFromCode
HTTP_STATUS = {
    GrpcStatus.CANCELLED: 408,
    GrpcStatus.UNKNOWN: 500,
    GrpcStatus.INVALID_ARGUMENT: 400,
    GrpcStatus.NOT_FOUND: 404,
    GrpcStatus.RESOURCE_EXHAUSTED: 429,
    GrpcStatus.FAILED_PRECONDITION: 412,
    GrpcStatus.OUT_OF_RANGE: 400,
    GrpcStatus.UNIMPLEMENTED: 501,
    GrpcStatus.INTERNAL: 500,
    GrpcStatus.UNAVAILABLE: 503,
    GrpcStatus.UNAUTHENTICATED: 401,
}

RPC_HEADERS = {"Grpc-Metadata-Content-Type": "application/grpc"}

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
    def of(cls, e: E.RaftkvError) -> EtcdError:
        code, message = etcd_status(e)
        return cls(code, message)

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> bytes:
        return dumps({"error": self.message, "message": self.message, "code": int(self.code)})

    async def respond(self, req: web.Request) -> web.StreamResponse:
        """grpc-gateway's HTTPError, framed as etcd frames it: a request that did not
        decode gets a Content-Length answer; an error from the RPC itself is chunked.
        Neither carries Grpc-Metadata-Content-Type."""
        cors = cors_headers(req)
        if self.decode:
            return web.Response(
                status=self.status,
                body=self.body(),
                headers={**cors, "Content-Type": "application/json"},
            )
        resp = web.StreamResponse(
            status=self.status,
            headers={
                **cors,
                "Content-Type": "application/json",
                "Trailer": "Grpc-Trailer-Content-Type",
            },
        )
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        await resp.write(self.body())
        await resp.write_eof()
        return resp


def text_response(req: web.Request, status: int, text: str) -> web.Response:
    """Go's http.Error: text/plain with nosniff (404 / 405 for unrouted requests)."""
    return web.Response(
        status=status,
        body=text.encode(),
        headers={
            **cors_headers(req),
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


# --- the face's error table: typed error -> (gRPC code, etcd's message) ---------------

S = GrpcStatus
_INVALID = {
    E.Invalid.EMPTY_KEY: "etcdserver: key is not provided",
    E.Invalid.KEY_NOT_PROVIDED: "etcdserver: key is not provided",
    E.Invalid.VALUE_PROVIDED: "etcdserver: value is provided",
    E.Invalid.LEASE_PROVIDED: "etcdserver: lease is provided",
    E.Invalid.TOO_MANY_OPS: MSG_TOO_MANY_OPS,
    E.Invalid.EMPTY_TXN_OP: MSG_KEY_NOT_FOUND,
    E.Invalid.BAD_MEMBER_URLS: "etcdserver: given member URLs are invalid",
}
_UNAVAILABLE = {
    E.Why.NO_LEADER: MSG_NO_LEADER,
    E.Why.TIMEOUT: MSG_TIMEOUT,
    E.Why.LEADER_CHANGED: "etcdserver: leader changed",
    E.Why.STOPPING: "etcdserver: server stopped",
    E.Why.NOT_APPLYING: "etcdserver: server stopped",
    E.Why.REMOVED: "etcdserver: the member has been permanently removed from the cluster",
    E.Why.STORAGE: "raftkv: this member's disk is full",
}
TABLE: dict[type[E.RaftkvError], tuple[GrpcStatus, object]] = {
    E.RequestTooLarge: (S.INVALID_ARGUMENT, "etcdserver: request is too large"),
    E.DuplicateKey: (S.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    E.KeyNotFound: (S.INVALID_ARGUMENT, MSG_KEY_NOT_FOUND),
    E.Compacted: (S.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    E.FutureRevision: (S.OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision"),
    E.LeaseNotFound: (S.NOT_FOUND, "etcdserver: requested lease not found"),
    E.LeaseExists: (S.FAILED_PRECONDITION, "etcdserver: lease already exists"),
    E.LeaseTTLTooLarge: (S.OUT_OF_RANGE, "etcdserver: too large lease TTL"),
    E.NoSpace: (S.RESOURCE_EXHAUSTED, MSG_NO_SPACE),
    E.ResultTooLarge: (
        S.RESOURCE_EXHAUSTED,
        lambda e: f"raftkv: the read would exceed its budget of {e.limit} {e.what}; use a limit",
    ),
    E.ResourceExhausted: (
        S.RESOURCE_EXHAUSTED,
        lambda e: f"raftkv: too many {e.resource} on this member (limit {e.limit})",
    ),
    E.RequestIdConflict: (S.FAILED_PRECONDITION, "raftkv: request id reused"),
    E.MemberNotFound: (S.NOT_FOUND, "etcdserver: member not found"),
    E.MemberExists: (S.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    E.NotLearner: (S.FAILED_PRECONDITION, "etcdserver: can only promote a learner member"),
    E.LearnerNotReady: (
        S.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    ),
    E.BadTransferee: (S.FAILED_PRECONDITION, "etcdserver: bad leader transferee"),
    E.ConfChangeRefused: (S.FAILED_PRECONDITION, lambda e: f"etcdserver: {e.describe()}"),
    E.Unsupported: (S.UNIMPLEMENTED, lambda e: f"raftkv: {e.describe()}"),
    E.ElectionNotLeader: (S.UNKNOWN, "election: not leader"),
    E.ElectionNoLeader: (S.UNKNOWN, "election: no leader"),
    E.InternalError: (S.INTERNAL, "raftkv: internal error"),
}


def etcd_status(e: E.RaftkvError) -> tuple[GrpcStatus, str]:
    """The gRPC code and message etcd answers the error with (gateway and gRPC)."""
    if isinstance(e, E.InvalidArgument):
        return S.INVALID_ARGUMENT, _INVALID.get(e.reason) or e.detail or "etcdserver: bad request"
    if isinstance(e, E.Unavailable):
        return S.UNAVAILABLE, _UNAVAILABLE[e.why]
    code, msg = TABLE.get(type(e), (S.INTERNAL, "raftkv: internal error"))
    return code, msg(e) if callable(msg) else str(msg)
