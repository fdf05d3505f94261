"""schemathesis hooks for the live run: its requests pass the fuzzer's safety net.

schemathesis draws path ids and bodies from the OpenAPI schema alone, so it would
happily remove member 2 or transfer leadership to 1. `before_call` runs for every
request it sends (every phase); an unsafe one is defused — a member id the cluster
does not have, a loopback URL on a port the fixture holds, an old revision — and
then still sent, so the checks judge a real answer. The protected ids and ports come
from the test, through RAFTKV_FUZZ_SAFETY.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlencode

import schemathesis

from tests.fuzz.client import Request
from tests.fuzz.safety import Safety, is_safe

_cfg = json.loads(os.environ.get("RAFTKV_FUZZ_SAFETY", "{}"))
NET = Safety(set(_cfg.get("ids", [])), set(_cfg.get("ports", [])))
UNKNOWN_ID = 77_777_777


def as_request(case: Any) -> Request:
    """The request the case will send, in the form the safety net reads."""
    target = case.formatted_path
    if case.query:
        target += "?" + urlencode(case.query, doseq=True)
    body = case.body
    if isinstance(body, bytes):
        raw = body
    elif isinstance(body, str | int | float | bool | list | dict) or body is None:
        raw = json.dumps(body).encode() if body is not None else b""
    else:  # schemathesis's NOT_SET: no body
        raw = b""
    return Request(case.method.upper().encode(), target.encode("utf-8", "surrogatepass"), (), raw)


def _defuse(case: Any) -> None:
    if case.path.startswith("/v1/members/") and case.path_parameters:
        case.path_parameters = {**case.path_parameters, "id": str(UNKNOWN_ID)}
    if isinstance(case.body, dict):
        body = dict(case.body)
        if "to" in body:
            body["to"] = UNKNOWN_ID
        if "revision" in body:
            body["revision"] = 1
        if "peer_url" in body:
            body["peer_url"] = f"http://127.0.0.1:{min(NET.reserved_ports, default=1)}"
        if "client_url" in body:
            body["client_url"] = None
        case.body = body


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if is_safe(as_request(case), NET):
        return
    _defuse(case)
    if not is_safe(as_request(case), NET):
        raise RuntimeError(f"raftkv fuzz: refusing to send {as_request(case)!r}")
