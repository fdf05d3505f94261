"""The per-request oracle: what every answer of either face must look like.

Rules (each a `Violation.rule`):

- `no-answer`: the connection was refused, reset or closed without a status line.
- `hang`: a unary request got no complete answer within the client timeout.
- `server-error`: a 5xx other than 503, unless it is one of etcd's own HTTP 500 /
  gRPC Unknown answers listed in V3_UNKNOWN_ALLOWED.
- `internal-error`: the body says "internal error" or carries a traceback (any status;
  reported on its own only when `server-error` does not already cover the answer).
- `error-not-json`: a 4xx/5xx whose body is not JSON — except etcd's plain-text 404 /
  405 for unrouted paths and methods, and (on /v3) the HTTP layer's own 400 (Go's
  plain text or raftkv's JSON parser error).
- `error-shape`: a JSON error body of the wrong shape for its face: /v1 is
  `{"error": {"code": str, "message": str}}`, /v3 is etcd's
  `{"error": str, "message": str, "code": int}`.
- `v3-status-mismatch`: a /v3 error whose HTTP status is not grpc-gateway's mapping of
  its gRPC code (clients pick retry rules from the status).
- `v1-503-no-retry-after`: the README promises `Retry-After` on every 503.
- `bad-json-2xx`: a complete 2xx answer labelled JSON that does not parse.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fuzz.client import Request, Response

# grpc-gateway v1's runtime.HTTPStatusFromCode, for every code etcd's gateway emits.
GRPC_TO_HTTP = {
    1: 408,  # grpc-gateway v1 (etcd 3.4) maps Canceled to 408
    2: 500,
    3: 400,
    4: 504,
    5: 404,
    6: 409,
    7: 403,
    8: 429,
    9: 412,
    10: 409,
    11: 400,
    12: 501,
    13: 500,
    14: 503,
    15: 500,
    16: 401,
}

# Go's encoding/json, base64 and jsonpb decode errors: what a stream's first message
# that does not decode is answered with.
_GO_DECODE = re.compile(
    r"^(unexpected EOF|invalid character .*|illegal base64 data at input byte \d+"
    r"|json: cannot unmarshal .*|unknown value .* for enum .*|unknown field .*"
    r"|raftkv: JSON nested too deep)$"
)


PARSER_ERROR = "HTTP parser error as text/plain"


@dataclass(frozen=True)
class Allowed:
    """One etcd-faithful HTTP 500 (gRPC code 2, Unknown) and why etcd does the same."""

    routes: frozenset[str]
    message: re.Pattern[str]
    why: str


V3_UNKNOWN_ALLOWED = [
    Allowed(
        frozenset({"/lock/lock"}),
        re.compile(r"^etcdserver: requested lease not found$"),
        # etcd 3.4 server/etcdserver/api/v3lock/lock.go: Lock() returns the error of
        # concurrency.NewSession(..., WithLease(req.Lease)) unwrapped: not a gRPC status,
        # so grpc-gateway answers codes.Unknown -> HTTP 500.
        "v3lock returns NewSession's plain error: gRPC Unknown",
    ),
    Allowed(
        frozenset({"/election/campaign", "/election/proclaim", "/election/resign"}),
        re.compile(r"^etcdserver: requested lease not found$"),
        # v3election/election.go: Campaign() / Proclaim() / Resign() also build a
        # session on the request's lease and return its error unwrapped.
        "v3election returns NewSession's plain error: gRPC Unknown",
    ),
    Allowed(
        frozenset(
            {
                "/election/leader",
                "/election/proclaim",
                "/election/resign",
                "/election/campaign",
            }
        ),
        re.compile(r'^(election: no leader|election: not leader|"leader" field must be provided)$'),
        # concurrency.ErrElectionNoLeader / ErrElectionNotLeader and v3election's
        # ErrMissingLeaderKey are errors.New values: grpc-gateway maps them to Unknown.
        "v3election's errors are plain Go errors: gRPC Unknown",
    ),
    Allowed(
        frozenset({"/watch", "/lease/keepalive"}),
        _GO_DECODE,
        # grpc-gateway's bidi-stream handlers decode the first request message before
        # the stream exists and return the decoder's error as is: codes.Unknown, 500.
        "a stream's first message that does not decode: grpc-gateway answers Unknown",
    ),
]

V3_PLAIN_TEXT = {
    (404, b"Not Found\n"),  # grpc-gateway's mux: an unrouted path under /v3
    (404, b"404 page not found\n"),  # Go's http.NotFound: /v3alpha and other paths
    (405, b"Method Not Allowed\n"),  # grpc-gateway: anything but POST on an RPC route
}


@dataclass(frozen=True)
class Case:
    """One fuzz case: the request and what the oracle needs to judge its answer."""

    face: str  # "v1" (native) or "v3" (etcd gateway)
    route: str  # the route template, e.g. "POST /v1/txn" or "POST /v3/kv/range"
    request: Request
    kind: str = "unary"  # "unary", "stream" (cut after a window), "blocking" (may wait)
    member: int = 0
    mutations: tuple[str, ...] = ()

    @property
    def rpc(self) -> str:
        """The /v3 RPC path without its prefix (`/kv/range`), for the allowlist."""
        path = self.route.split(" ", 1)[-1]
        return re.sub(r"^/v3(beta)?", "", path)


@dataclass(frozen=True)
class Violation:
    rule: str
    status: int | None
    detail: str


def _message(body: bytes) -> str:
    try:
        v = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip().splitlines()[0][:120] if body else ""
    if isinstance(v, dict):
        err = v.get("error")
        if isinstance(err, dict):
            return str(err.get("message", ""))[:200]
        if "message" in v:
            return str(v.get("message"))[:200]
        if err is not None:
            return str(err)[:200]
    return json.dumps(v)[:120]


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _v3_allowed_500(case: Case, body: Any) -> bool:
    if not isinstance(body, dict) or body.get("code") != 2:
        return False
    msg = body.get("message")
    if not isinstance(msg, str) or "internal" in msg.lower():
        return False
    return any(case.rpc in a.routes and a.message.match(msg) for a in V3_UNKNOWN_ALLOWED)


def _http_layer_400(r: Response) -> bool:
    """The HTTP layer's own answer to a request it could not parse, before any route
    ran (so none of the gateway's CORS headers): Go's plain text, or raftkv's JSON
    parser error — a request that does not parse names no face, and raftkv answers
    every one in the native shape (`{"error": {"code": "bad_request", ...}}`)."""
    if r.status != 400 or "access-control-allow-origin" in r.headers:
        return False
    if r.content_type == "text/plain":
        return True
    body = _parse(r.body) if r.complete else None
    err = body.get("error") if isinstance(body, dict) else None
    return isinstance(err, dict) and err.get("code") == "bad_request"


def _health_probe(case: Case, r: Response, body: Any) -> bool:
    """GET /health and /readyz answer 503 with their own documented body
    (`{"health": false, "reason": ...}`, like etcd's /health): a probe result, not an
    API error, so the `{"error": ...}` shape does not apply."""
    path = case.request.target.split(b"?", 1)[0]
    return (
        r.status == 503
        and path in (b"/health", b"/readyz")
        and isinstance(body, dict)
        and body.get("health") is False
        and isinstance(body.get("reason"), str)
    )


def check(case: Case, r: Response) -> list[Violation]:
    """Every rule this answer breaks, most severe first."""
    out: list[Violation] = []
    if r.error is not None and r.status is None:
        return [Violation("no-answer", None, re.sub(r"\d+", "N", r.error)[:120])]
    if r.timed_out:
        return [Violation("hang", r.status, f"no complete answer ({case.kind})")]
    if r.status is None:
        return out  # a stream cut before its head: allowed (etcd sends it with data)
    status = r.status
    body = _parse(r.body) if r.complete else None
    msg = _message(r.body)
    low = r.body.lower()
    if status >= 500 and status != 503:
        if not (case.face == "v3" and status == 500 and _v3_allowed_500(case, body)):
            out.append(Violation("server-error", status, msg))
    if not out and (b"internal error" in low or b"traceback (most recent call last)" in low):
        out.append(Violation("internal-error", status, msg))
    if status >= 400 and r.complete and case.request.method != b"HEAD":
        out += _check_error_body(case, r, body, msg)
    elif 200 <= status < 300 and r.complete and not r.cut and r.content_type == "application/json":
        if body is None and r.body:
            out.append(Violation("bad-json-2xx", status, r.body[:80].decode("latin-1")))
    return out


def _check_error_body(case: Case, r: Response, body: Any, msg: str) -> list[Violation]:
    status = r.status
    if case.face == "v3":
        if (status, r.body) in V3_PLAIN_TEXT and r.content_type == "text/plain":
            return []
        if _http_layer_400(r):
            # etcd's Go net/http server also answers a request it cannot parse with a
            # plain-text "400 Bad Request" before grpc-gateway ever sees it.
            return []
    if body is None or "json" not in r.content_type:
        detail = f"{r.content_type or 'no content-type'}: {msg}"
        if _http_layer_400(r):
            detail = f"{PARSER_ERROR}: {msg.split(':')[0]}"
        return [Violation("error-not-json", status, detail)]
    out: list[Violation] = []
    if case.face == "v1" and _health_probe(case, r, body):
        return out
    if case.face == "v1":
        err = body.get("error") if isinstance(body, dict) else None
        if not (
            isinstance(err, dict)
            and isinstance(err.get("code"), str)
            and isinstance(err.get("message"), str)
        ):
            out.append(Violation("error-shape", status, f"not {{error: {{code, message}}}}: {msg}"))
        if status == 503 and "retry-after" not in r.headers:
            out.append(Violation("v1-503-no-retry-after", status, msg))
        return out
    ok = (
        isinstance(body, dict)
        and isinstance(body.get("error"), str)
        and isinstance(body.get("message"), str)
        and isinstance(body.get("code"), int)
        and not isinstance(body.get("code"), bool)
    )
    if not ok:
        return [Violation("error-shape", status, f"not etcd's {{error, message, code}}: {msg}")]
    want = GRPC_TO_HTTP.get(body["code"])
    if want != status:
        out.append(Violation("v3-status-mismatch", status, f"code {body['code']}: {msg}"))
    return out


def normalize(text: str) -> str:
    """Digits out, so one bug with many numbers stays one finding."""
    return re.sub(r"\d+", "N", text)[:100]
