"""Malformed input gets a clear 4xx with a JSON error body — never a 500.

The cases come from a fuzzing pass over the native API: integers beyond int64 used to
overflow the 8-byte encodings and surface as 500s.
"""

from __future__ import annotations

import pytest

from tests.integration.cluster import Cluster

HUGE = "99999999999999999999999"

CASES = [
    ("GET", f"/v1/lease/{HUGE}", None),
    ("DELETE", f"/v1/lease/{HUGE}", None),
    ("POST", f"/v1/lease/{HUGE}/keepalive", None),
    ("PUT", f"/v1/kv/k?lease={HUGE}", "v"),
    ("GET", f"/v1/kv/k?revision={HUGE}", None),
    ("GET", f"/v1/kv/k?limit={HUGE}", None),
    ("PUT", f"/v1/kv/k?if_mod_revision={HUGE}", "v"),
    ("GET", f"/v1/watch/k?start_revision={HUGE}", None),
    ("POST", "/v1/lease/grant", {"ttl": 10, "id": int(HUGE)}),
    ("POST", "/v1/lease/grant", {"ttl": int(HUGE)}),
    ("POST", "/v1/compact", {"revision": int(HUGE)}),
    ("POST", "/v1/txn", {"success": [{"put": {"key": "k", "value": "v", "lease": int(HUGE)}}]}),
    ("GET", "/v1/lease/-1", None),
    ("GET", "/v1/kv/k?limit=abc", None),
    ("PUT", "/v1/kv/k?if_version=-3", "v"),
    ("POST", "/v1/txn", {"compare": "x"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CASES)
def test_bad_input_is_a_4xx_json_error(
    cluster: Cluster, method: str, path: str, body: object
) -> None:
    r = cluster.req("n1", method, path, body=body, timeout=5)
    assert 400 <= r.status < 500, (r.status, r.body[:300])
    assert "error" in r.json()
    # Nothing a bad request did may disturb the cluster.
    assert cluster.put("n1", "after-bad-input", "ok").status == 200
