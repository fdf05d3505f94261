"""The retrying client's outcome rule (register-retry, for the no-dedup mutation)."""

from __future__ import annotations

import pytest

from jepsen.client import Reply, retried_write_outcome

OK = Reply("http", 200, {"revision": 5})
CAS_FAILED = Reply("http", 412, {"current": None})
TIMEOUT = Reply("timeout", error="timeout")
REFUSED = Reply("refused", error="refused")
UNAVAILABLE = Reply("http", 503, {"error": "request timed out"})


@pytest.mark.parametrize(
    ("replies", "outcome"),
    [
        ([OK], "ok"),
        ([TIMEOUT, OK], "ok"),  # the server answers a retry with the first outcome
        ([TIMEOUT, CAS_FAILED], "fail"),  # definite: the request id applied as a failure
        ([REFUSED], "fail"),  # never sent anywhere
        ([REFUSED, REFUSED], "fail"),
        ([TIMEOUT, REFUSED], "info"),  # the first attempt may still apply
        ([UNAVAILABLE, TIMEOUT, REFUSED], "info"),
        ([TIMEOUT, UNAVAILABLE], "info"),
    ],
)
def test_retried_write_outcome(replies: list[Reply], outcome: str) -> None:
    assert retried_write_outcome(replies) == outcome
