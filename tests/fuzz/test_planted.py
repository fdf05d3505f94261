"""The fuzzer is evidence only if it can fail: run the same machinery against an app
with planted bugs (tests/fuzz/planted.py) and require it to report each one within
its example budget — and nothing but the HTTP layer's plain-text 400s on a clean app.
"""

from __future__ import annotations

import json

import pytest

from tests.fuzz import planted, v1, v3
from tests.fuzz.client import Request, send
from tests.fuzz.conftest import note
from tests.fuzz.oracle import PARSER_ERROR
from tests.fuzz.runner import Finding, Fuzzer, Target, examples
from tests.fuzz.safety import Safety

pytestmark = pytest.mark.fuzz


def _fuzz(srv: planted.Served, name: str, health_every: int = 200) -> list[Finding]:
    """Both faces against the planted app, with CI's settings but a 0.5 s hang timeout."""
    doc = send(Request(b"GET", b"/v1/openapi.json"), srv.port).body
    target = Target([srv.port], srv.health, timeout=0.5, stream_window=0.3)
    f1 = Fuzzer(name + "-v1", target, health_every=health_every)
    f1.run(v1.cases(json.loads(doc), v1.Pools(), Safety(), 1), examples(300), None)
    found = list(f1.findings.values())
    note(f1.summary())
    if f1.broken is None:
        f3 = Fuzzer(name + "-v3", target, health_every=health_every)
        kv_range = [r for r in v3.ROUTES if r.path == "/kv/range"]
        strategy = v3.cases(v3.V3Pools([1]), Safety(), 1, routes=kv_range, other=False)
        f3.run(strategy, examples(100), None)
        found += f3.findings.values()
        note(f3.summary())
    return found


def _has(found: list[Finding], rule: str, route: str, detail: str = "") -> bool:
    return any(
        f.violation.rule == rule and f.case.route == route and detail in f.violation.detail
        for f in found
    )


def test_fuzzer_reports_every_planted_bug() -> None:
    with planted.Served(planted.build()) as srv:
        found = _fuzz(srv, "planted")
    report = "\n".join(f"{f.violation.rule} {f.case.route} {f.violation.detail}" for f in found)
    assert _has(found, "server-error", "POST /v1/things", "UnicodeEncodeError"), report
    assert _has(found, "server-error", "POST /v1/things", "internal error: error"), report
    assert _has(found, "hang", "GET /v1/things/{id}"), report
    assert _has(found, "server-error", "POST /v3/kv/range", "internal"), report
    assert not any(f.violation.rule == "cluster-health" for f in found), report


def test_fuzzer_reports_a_planted_cluster_break() -> None:
    with planted.Served(planted.build(breakable=True)) as srv:
        found = _fuzz(srv, "planted-break", health_every=50)
    health = [f for f in found if f.violation.rule == "cluster-health"]
    assert health, [f.violation for f in found]
    # The cases sent just before the failed check include the planted trigger.
    assert any(c.request.target == b"/v1/things/0" for c in health[0].context), health[0]


def test_fuzzer_is_quiet_on_the_app_without_its_bugs() -> None:
    """The oracle's false-positive check: the same app minus the planted bugs draws
    only the HTTP layer's plain-text 400s (aiohttp's own, raftkv shares them)."""
    with planted.Served(planted.build(bugs=False)) as srv:
        found = _fuzz(srv, "clean")
    noise = [f for f in found if not f.violation.detail.startswith(PARSER_ERROR)]
    assert not noise, [(f.violation, f.case.request) for f in noise]
