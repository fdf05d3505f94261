"""The native API's error table: typed error -> HTTP status, code and message.

Every error answer is `{"error": {"code", "message"}}` (plus context such as
`current` on a 412 or `compact_revision`). Client input never produces a 5xx other
than 503 (retry: no leader, timeout) and 507 (this member's disk is full); a 500 is
a bug, logged with its traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from raftkv import errors as E
from raftkv.server.v1.encode import kv_json

Entry = tuple[int, str, Callable[[Any], str]]


class ApiError(Exception):
    """A face-level refusal (a malformed query, a missing key on GET)."""

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


_INVALID_TEXT = {
    E.Invalid.EMPTY_KEY: "key is empty",
    E.Invalid.VALUE_PROVIDED: "ignore_value is set and a value is given",
    E.Invalid.LEASE_PROVIDED: "ignore_lease is set and a lease is given",
    E.Invalid.TOO_MANY_OPS: "too many operations in txn request",
    E.Invalid.NESTING_TOO_DEEP: "txn nested too deep",
    E.Invalid.BAD_MEMBER_URLS: "member URLs must look like http://host:port (port 1-65535)",
    E.Invalid.REQUEST_ID_TOO_LONG: "request_id must be 1 to 128 bytes",
    E.Invalid.LEASE_ID_RANGE: "lease id out of range",
    E.Invalid.NEGATIVE_TTL: "ttl must not be negative",
    E.Invalid.NEGATIVE_FIELD: "revisions and limits must not be negative",
}


def _invalid(e: E.InvalidArgument) -> str:
    return e.detail or _INVALID_TEXT.get(e.reason, e.reason.name.lower().replace("_", " "))


_UNAVAILABLE = {
    E.Why.NO_LEADER: ("no_leader", "no leader"),
    E.Why.TIMEOUT: ("timeout", "request timed out: it may or may not have been applied"),
    E.Why.STOPPING: ("stopping", "this member is shutting down"),
    E.Why.NOT_APPLYING: ("not_applying", "this member stopped applying (see its log)"),
    E.Why.LEADER_CHANGED: ("leader_changed", "the leader changed; retry"),
    E.Why.REMOVED: ("removed", "this member was removed from the cluster"),
}

TABLE: dict[type[E.RaftkvError], Entry] = {
    E.InvalidArgument: (400, "bad_request", _invalid),
    E.RequestTooLarge: (
        413,
        "request_too_large",
        lambda e: f"request is too large ({e.size} > --max-request-bytes {e.limit})",
    ),
    E.DuplicateKey: (400, "duplicate_key", lambda e: "duplicate key given in txn request"),
    E.KeyNotFound: (400, "key_not_found", lambda e: "key not found (ignore_value/ignore_lease)"),
    E.Compacted: (400, "revision_compacted", lambda e: "required revision has been compacted"),
    E.FutureRevision: (400, "future_revision", lambda e: "required revision is a future revision"),
    E.LeaseNotFound: (404, "lease_not_found", lambda e: "requested lease not found"),
    E.LeaseExists: (409, "lease_exists", lambda e: "lease already exists"),
    E.LeaseTTLTooLarge: (400, "lease_ttl_too_large", lambda e: "too large lease TTL"),
    E.NoSpace: (
        507,
        "no_space",
        lambda e: (
            "database space exceeded (the NOSPACE alarm is raised: compact, "
            "defragment, then disarm it)"
        ),
    ),
    E.ResultTooLarge: (
        400,
        "result_too_large",
        lambda e: f"the read would exceed its budget of {e.limit} {e.what}; use a limit",
    ),
    E.ResourceExhausted: (
        429,
        "resource_exhausted",
        lambda e: f"too many {e.resource} on this member (limit {e.limit})",
    ),
    E.RequestIdConflict: (
        409,
        "request_id_conflict",
        lambda e: "request_id was already used for a different request",
    ),
    E.MemberNotFound: (404, "member_not_found", lambda e: f"member {e.member_id} not found"),
    E.MemberExists: (
        409,
        "member_exists",
        lambda e: f"member {e.name} ({e.peer_url}) exists",
    ),
    E.NotLearner: (412, "not_learner", lambda e: f"member {e.member_id} is already a voter"),
    E.LearnerNotReady: (
        412,
        "learner_not_ready",
        lambda e: (
            f"learner {e.member_id} is not in sync with the leader (match {e.match}, last {e.last})"
        ),
    ),
    E.BadTransferee: (412, "not_voter", lambda e: f"member {e.member_id} is not a voter"),
    E.ConfChangeRefused: (409, "conf_change_refused", lambda e: e.describe()),
    E.Unsupported: (501, "not_supported", lambda e: e.describe()),
    E.ElectionNotLeader: (412, "not_leader", lambda e: "election: not leader"),
    E.ElectionNoLeader: (404, "no_leader", lambda e: "election: no leader"),
    E.InternalError: (500, "internal", lambda e: f"internal error: {e.detail}"),
}


def to_api_error(e: E.RaftkvError) -> ApiError:
    if isinstance(e, E.Unavailable):
        if e.why == E.Why.STORAGE:
            return ApiError(
                507,
                "disk_full",
                "this member's disk is full; writes resume when "
                "space is freed (other members may take them)",
            )
        code, text = _UNAVAILABLE[e.why]
        if e.proposed and e.why != E.Why.TIMEOUT:
            code = "indeterminate"  # it may have applied: the client must not blindly retry
        return ApiError(503, code, text)
    if isinstance(e, E.CompareFailed):
        current = kv_json(e.current) if e.current is not None else None
        return ApiError(
            412,
            "compare_failed",
            "the condition on the key did not hold",
            {"current": current, "revision": e.revision},
        )
    status, code, text = TABLE.get(type(e), (500, "internal", lambda e: e.describe()))
    extra = {"compact_revision": e.compact_revision} if isinstance(e, E.Compacted) else None
    return ApiError(status, code, text(e), extra)


def error_response(e: ApiError) -> web.Response:
    body: dict[str, Any] = {"error": {"code": e.code, "message": e.message}}
    body.update(e.extra)
    headers = {"Retry-After": "1"} if e.status in (503, 507, 429) else None
    return web.Response(
        status=e.status,
        text=json.dumps(body, default=str),
        content_type="application/json",
        headers=headers,
    )


INT64_MAX = (1 << 63) - 1


def non_negative_int(v: object, name: str, *, positive: bool = False) -> int:
    """A JSON or query integer within etcd's int64 range, or a 400."""
    if isinstance(v, bool) or not isinstance(v, int) or v < (1 if positive else 0):
        kind = "a positive" if positive else "a non-negative"
        raise bad_request(f"{name} must be {kind} integer")
    if v > INT64_MAX:
        raise bad_request(f"{name} must be at most {INT64_MAX}")
    return v
