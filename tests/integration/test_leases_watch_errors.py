"""Leases, watches and every documented error status."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest

from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(90)


def test_lease_expiry_deletes_keys(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]
    g = cluster.req(follower, "POST", "/v1/lease/grant", {"ttl": 1})
    assert g.status == 200, g.body
    lease = g.json()
    assert lease["ttl"] == 3  # raised to the minimum TTL (1.5 x max election timeout)
    lid = lease["id"]
    assert cluster.put(follower, "eph", "x", f"?lease={lid}").status == 200
    info = cluster.req(follower, "GET", f"/v1/lease/{lid}?keys").json()
    assert info["keys"] == ["eph"] and 0 < info["ttl"] <= 3
    assert any(x["id"] == lid for x in cluster.req(leader, "GET", "/v1/leases").json()["leases"])
    # Keepalives through a follower (proxied to the leader) keep it alive past its TTL.
    for _ in range(8):
        k = cluster.req(follower, "POST", f"/v1/lease/{lid}/keepalive")
        assert k.status == 200 and k.json()["ttl"] == 3, k.body
        time.sleep(0.5)
    assert cluster.get(leader, "eph").status == 200
    deadline = time.monotonic() + 10
    while cluster.get(follower, "eph").status == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.get(follower, "eph").status == 404
    # The leader may apply the revoke a moment after the follower did.
    deadline = time.monotonic() + 5
    while cluster.req(leader, "GET", f"/v1/lease/{lid}").status != 404:
        assert time.monotonic() < deadline, "lease still visible on the leader"
        time.sleep(0.05)
    assert cluster.req(leader, "POST", f"/v1/lease/{lid}/keepalive").status == 404


def test_lease_revoke(cluster: Cluster) -> None:
    lid = cluster.req("n1", "POST", "/v1/lease/grant", {"ttl": 60, "id": 42}).json()["id"]
    assert lid == 42
    cluster.put("n2", "a", "1", "?lease=42")
    cluster.put("n3", "b", "2", "?lease=42")
    assert cluster.req("n3", "DELETE", "/v1/lease/42").status == 200
    assert cluster.get("n1", "a").status == 404 and cluster.get("n2", "b").status == 404
    assert cluster.req("n3", "DELETE", "/v1/lease/42").status == 404
    assert cluster.put("n1", "c", "1", "?lease=42").status == 404


class WatchReader(threading.Thread):
    def __init__(self, cluster: Cluster, name: str, path: str, sse: bool = False) -> None:
        super().__init__(daemon=True)
        port = cluster.members[name].client_port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Accept": "text/event-stream"} if sse else {}
        self.conn.request("GET", path, headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.sse = sse
        self.messages: list[dict[str, Any]] = []
        self.created = threading.Event()

    def run(self) -> None:
        try:
            for raw in self.resp:
                line = raw.decode().strip()
                if self.sse:
                    if not line.startswith("data: "):
                        continue
                    line = line[len("data: ") :]
                if not line:
                    continue
                msg = json.loads(line)
                self.messages.append(msg)
                if msg.get("created"):
                    self.created.set()
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # the test closed the stream (http.client raises AttributeError then)

    def events(self) -> list[tuple[str, str, str | None, int]]:
        return [
            (e["type"], e["kv"]["key"], e["kv"].get("value"), m["revision"])
            for m in self.messages
            for e in m.get("events", [])
        ]

    def wait_events(self, n: int, timeout: float = 10) -> list[tuple[str, str, str | None, int]]:
        deadline = time.monotonic() + timeout
        while len(self.events()) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.events()

    def close(self) -> None:
        self.conn.close()


def test_watch_sees_events_in_order(cluster: Cluster) -> None:
    w = WatchReader(cluster, "n2", "/v1/watch/job/?prefix&prev_kv")
    sse = WatchReader(cluster, "n3", "/v1/watch/job/a", sse=True)
    for r in (w, sse):
        r.start()
        assert r.created.wait(5)
    cluster.put("n1", "job/a", "1")
    cluster.put("n3", "job/b", "2")
    cluster.put("n2", "other", "x")
    cluster.put("n1", "job/a", "3")
    cluster.req("n1", "DELETE", "/v1/kv/job/?prefix")
    evs = w.wait_events(5)
    assert [(t, k, v) for t, k, v, _ in evs] == [
        ("PUT", "job/a", "1"),
        ("PUT", "job/b", "2"),
        ("PUT", "job/a", "3"),
        ("DELETE", "job/a", ""),
        ("DELETE", "job/b", ""),
    ]
    revs = [r for *_, r in evs]
    assert revs == sorted(revs)
    puts_a = [m for m in w.messages if m.get("events") and m["events"][0]["kv"]["value"] == "3"]
    assert puts_a[0]["events"][0]["prev_kv"]["value"] == "1"
    assert [(t, v) for t, _, v, _ in sse.wait_events(3)] == [
        ("PUT", "1"),
        ("PUT", "3"),
        ("DELETE", ""),
    ]
    # Catch-up from history, then live.
    hist = WatchReader(cluster, "n1", f"/v1/watch/job/a?start_revision={revs[0]}")
    hist.start()
    assert [(t, v) for t, _, v, _ in hist.wait_events(3)] == [
        ("PUT", "1"),
        ("PUT", "3"),
        ("DELETE", ""),
    ]
    cluster.put("n2", "job/a", "live")
    assert hist.wait_events(4)[-1][2] == "live"
    for r in (w, sse, hist):
        r.close()


def test_watch_compacted_start_revision(cluster: Cluster) -> None:
    revs = [cluster.put("n1", "cw", str(i)).json()["revision"] for i in range(3)]
    assert cluster.req("n1", "POST", "/v1/compact", {"revision": revs[2]}).status == 200
    # A linearizable read on n2 waits until n2 has applied the compaction too.
    assert cluster.get("n2", "cw").status == 200
    w = WatchReader(cluster, "n2", f"/v1/watch/cw?start_revision={revs[0]}")
    w.start()
    w.join(10)
    assert w.messages[-1]["compact_revision"] == revs[2]


def test_error_statuses(cluster: Cluster) -> None:
    def err(r: Any, status: int) -> dict[str, Any]:
        assert r.status == status, (r.status, r.body)
        assert r.headers["content-type"].startswith("application/json")
        body = r.json()["error"]
        assert body["code"] and body["message"]
        return body

    err(cluster.get("n1", "missing"), 404)
    err(cluster.req("n1", "GET", "/v1/nope"), 404)
    err(cluster.req("n1", "GET", "/v1/lease/12345"), 404)
    err(cluster.req("n2", "POST", "/v1/txn", "{not json"), 400)
    err(cluster.req("n2", "POST", "/v1/txn", {"compare": [{"key": "a", "target": "X"}]}), 400)
    err(cluster.req("n2", "POST", "/v1/txn", {"success": [{"put": {"key": 5}}]}), 400)
    err(cluster.req("n2", "POST", "/v1/txn", [1, 2]), 400)
    err(cluster.get("n3", "k", "?limit=abc"), 400)
    err(cluster.get("n3", "k", "?revision=-1"), 400)
    err(cluster.req("n3", "POST", "/v1/lease/grant", {"ttl": "x"}), 400)
    err(cluster.req("n3", "POST", "/v1/lease/abc/keepalive"), 400)
    err(cluster.req("n3", "POST", "/v1/compact", {"revision": 10**9}), 400)
    err(cluster.req("n3", "PUT", "/v1/kv/"), 400)
    err(cluster.put("n1", "k", "v", "?if_version=zz"), 400)
    err(cluster.get("n1", "k", "?revision=999999"), 400)
    cluster.put("n1", "cas", "1")
    assert err(cluster.put("n1", "cas", "2", "?if_absent"), 412)["code"] == "compare_failed"
    err(cluster.put("n2", "big", b"x" * (1536 * 1024 + 1)), 413)
    assert cluster.put("n2", "almost", b"x" * (1024 * 1024)).status == 200


def test_no_leader_is_503(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    lonely = cluster.followers(leader)[0]
    for name in list(cluster.members):
        if name != lonely:
            cluster.kill(name)
    t0 = time.monotonic()
    r = cluster.put(lonely, "k", "v")
    assert r.status == 503 and r.headers.get("retry-after") == "1", r.body
    assert time.monotonic() - t0 < 10
    assert cluster.get(lonely, "k").status == 503
    time.sleep(1.5)  # past the election timeout: the follower knows it has no leader
    assert cluster.req(lonely, "GET", "/health").status == 503
    assert cluster.req(lonely, "GET", "/livez").status == 200
    assert cluster.get(lonely, "k", "?serializable").status == 404
