"""Regression tests for issue 14: no request may take down a member or the cluster.

Each test pins one defect found by trying raftkv as a hostile or careless client
would, on real processes: the query of death, reused request ids, browsers, the
request limits, and the disk- and corruption-handling of a member's data.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

from tests.integration.cluster import Cluster


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _term(c: Cluster, name: str) -> int:
    st = c.status(name)
    assert st is not None
    return int(st["term"])


def _txn_of_ranges(n: int, with_put: bool) -> dict[str, object]:
    ops: list[dict[str, object]] = [{"range": {"key": "qod/", "prefix": True}} for _ in range(n)]
    if with_put:
        ops.append({"put": {"key": "qod-marker", "value": "x"}})
    return {"success": ops}


def test_query_of_death_is_refused_and_the_cluster_keeps_its_leader(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    for i in range(0, 1000, 100):
        body = {
            "success": [
                {"put": {"key": f"qod/{j:04d}", "value": "v" * 64}} for j in range(i, i + 100)
            ]
        }
        assert c.req(leader, "POST", "/v1/txn", body).status == 200
    term = _term(c, leader)
    # 1,000 ranges: over --max-txn-ops, refused before anything is proposed.
    r = c.req(leader, "POST", "/v1/txn", _txn_of_ranges(1000, False))
    assert r.status == 400 and "too many operations" in r.json()["error"]["message"], r.body
    # 127 ranges and a put: proposed, but its reads (127,000 keys) exceed the budget the
    # proposer stamped into it, so every member refuses it the same way, in apply.
    r = c.req(leader, "POST", "/v1/txn", _txn_of_ranges(127, True), timeout=20)
    assert r.status == 400 and r.json()["error"]["code"] == "result_too_large", r.body
    assert c.get(leader, "qod-marker").status == 404  # nothing of it was applied
    # 128 ranges that only read: served locally, same budget, never in the log.
    r = c.req(leader, "POST", "/v1/txn", _txn_of_ranges(128, False), timeout=20)
    assert r.status == 400 and r.json()["error"]["code"] == "result_too_large", r.body
    # The same through etcd's gateway.
    t = {"success": [{"request_range": {"key": _b64("qod/"), "range_end": _b64("qod0")}}] * 128}
    r = c.req(leader, "POST", "/v3/kv/txn", t, timeout=20)
    assert r.status == 429 and r.json()["code"] == 8, r.body
    assert c.wait_leader() == leader and _term(c, leader) == term
    assert c.put(leader, "after-qod", "ok").status == 200
    # The refused entry is in the log of every member: a full restart replays it.
    c.stop_all()
    c.start_all()
    leader = c.wait_leader()
    assert c.get(leader, "after-qod").json()["value"] == "ok"
    assert c.put(leader, "after-restart", "ok").status == 200


def test_a_reused_request_id_is_a_conflict_never_a_silent_success(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    first = c.put(leader, "rid/a", "1", "?request_id=abcd")
    assert first.status == 200
    again = c.put(c.followers(leader)[0], "rid/a", "1", "?request_id=abcd")
    assert again.status == 200 and again.json()["revision"] == first.json()["revision"]
    other = c.put(leader, "rid/b", "1", "?request_id=abcd")
    assert other.status == 409 and other.json()["error"]["code"] == "request_id_conflict"
    assert c.get(leader, "rid/b").status == 404
    r = c.req(leader, "DELETE", "/v1/kv/rid/a?request_id=abcd")
    assert r.status == 409, r.body
    assert c.get(leader, "rid/a").json()["value"] == "1"


def test_browsers_cannot_write_without_cors(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = json.dumps({"success": [{"delete": {"key": "", "prefix": True}}]})
    r = c.req(leader, "POST", "/v1/txn", body, headers=evil)
    assert r.status == 403 and r.json()["error"]["code"] == "forbidden_origin"
    r = c.req(
        leader, "POST", "/v3/kv/deleterange", {"key": "AA==", "range_end": "AA=="}, headers=evil
    )
    assert r.status == 403
    r = c.req(leader, "PUT", "/v1/kv/cors", "x", headers=evil)
    assert r.status == 403 and c.get(leader, "cors").status == 404
    ok = c.req(leader, "GET", "/v1/status", headers=evil)
    assert ok.status == 200 and "access-control-allow-origin" not in ok.headers
    assert c.put(leader, "cors", "curl sends no Origin").status == 200
    # The web console's own origin (the member's advertised client URL) may write; a
    # DNS-rebinding page (another name, same address: its Host header matches it) may not.
    port = c.members[leader].client_port
    own = {"Origin": f"http://127.0.0.1:{port}"}
    assert c.req(leader, "PUT", "/v1/kv/cors", "console", headers=own).status == 200
    rebound = {"Origin": f"http://rebind.example:{port}", "Host": f"rebind.example:{port}"}
    assert c.req(leader, "PUT", "/v1/kv/cors", "x", headers=rebound).status == 403
    other = c.followers(leader)[0]  # another member's console is another origin
    assert c.req(other, "PUT", "/v1/kv/cors", "x", headers=own).status == 403
    assert c.get(leader, "cors").json()["value"] == "console"


def test_request_limits_are_enforced_before_raft(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    big = b"x" * (3 * 512 * 1024 + 1)
    r = c.req(leader, "PUT", "/v1/kv/big", big)
    assert r.status == 413 and r.json()["error"]["code"] == "request_too_large"
    fits = b"x" * (1400 * 1024)
    assert c.req(leader, "PUT", "/v1/kv/big", fits).status == 200
    r = c.req(
        leader, "POST", "/v3/kv/put", {"key": _b64("big"), "value": base64.b64encode(big).decode()}
    )
    assert r.status == 400 and r.json()["message"] == "etcdserver: request is too large", r.body
    deep = {"success": [{"txn": {"success": []}}]}
    for _ in range(40):
        deep = {"success": [{"txn": deep}]}
    r = c.req(leader, "POST", "/v1/txn", deep)
    assert r.status == 400, r.body
    r = c.req(leader, "GET", "/v1/kv/k?ttl=3")
    assert r.status == 400 and "ttl" in r.json()["error"]["message"]
    r = c.req(leader, "POST", "/v1/txn", "{}", headers={"Content-Encoding": "gzip"})
    assert r.status == 400 and r.json()["error"]["code"] == "bad_request"
    assert c.put(leader, "after-limits", "ok").status == 200


def test_a_slow_body_is_dropped_and_the_member_serves_others(cluster: Cluster) -> None:
    import socket

    c = cluster
    leader = c.wait_leader()
    port = c.members[leader].client_port
    slow = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
        slow.append(s)
    try:
        assert c.put(leader, "fast", "ok").status == 200
    finally:
        for s in slow:
            s.close()


def _rss_anon_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon")


def test_a_watcher_that_never_reads_costs_bounded_memory(cluster: Cluster) -> None:
    import socket

    c = cluster
    leader = c.wait_leader()
    proc = c.members[leader].proc
    assert proc is not None
    before = _rss_anon_kib(proc.pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", c.members[leader].client_port))
    s.sendall(b"GET /v1/watch/slow/?prefix HTTP/1.1\r\nHost: x\r\n\r\n")
    value = os.urandom(50 * 1024).hex().encode()  # 100 KiB
    peak = before
    try:
        for i in range(3000):
            assert c.put(leader, f"slow/{i % 50}", value).status == 200
            if i % 500 == 0:
                peak = max(peak, _rss_anon_kib(proc.pid))
        peak = max(peak, _rss_anon_kib(proc.pid))
    finally:
        s.close()
    time.sleep(2)
    after = _rss_anon_kib(proc.pid)
    assert peak - before < 200 * 1024, (before, peak)
    assert after - before < 50 * 1024, (before, after)


def test_quota_raises_a_replicated_nospace_alarm_that_defrag_and_disarm_clear(
    tmp_path: Path,
) -> None:
    from tests.integration.conftest import FAST_ARGS

    c = Cluster(tmp_path, 3, [*FAST_ARGS, "--quota-backend-bytes", str(2 << 20)])
    c.start_all()
    try:
        leader = c.wait_leader()
        value = b"q" * (64 * 1024)
        refused = None
        for i in range(100):
            r = c.put(leader, f"quota/{i}", value)
            if r.status != 200:
                refused = r
                break
        assert refused is not None and refused.status == 507, refused
        assert refused.json()["error"]["code"] == "no_space"
        # The alarm is raised through Raft: every member lists it and refuses puts.
        for name in c.members:
            _wait(lambda n=name: _alarms(c, n) == ["NOSPACE"], 10, f"{name} to list NOSPACE")
            assert c.put(name, "quota/small", "x").status == 507
        assert c.get(leader, "quota/0", "?serializable").status == 200  # reads work
        r = c.req(leader, "DELETE", "/v1/kv/quota/?prefix")  # deletes work
        assert r.status == 200, r.body
        rev = r.json()["revision"]
        assert (
            c.req(leader, "POST", "/v1/compact", {"revision": rev, "physical": True}).status == 200
        )
        before = c.status(leader)["db_size"]  # type: ignore[index]
        for name in c.members:
            assert c.req(name, "POST", "/v3/maintenance/defragment", {}).status == 200
        after = c.status(leader)["db_size"]  # type: ignore[index]
        assert after < before, (before, after)  # the file really shrank
        # A restart keeps the alarm: it is replicated, persisted state, not a flag.
        c.stop_all()
        c.start_all()
        leader = c.wait_leader()
        assert _alarms(c, leader) == ["NOSPACE"]
        assert c.put(leader, "quota/small", "x").status == 507
        _disarm_all(c, leader)  # as `etcdctl alarm disarm` does: each listed alarm
        _wait(lambda: all(_alarms(c, n) == [] for n in c.members), 10, "the alarm to clear")
        assert c.put(leader, "quota/after", "ok").status == 200
    finally:
        c.close()


def _alarms(c: Cluster, name: str) -> list[str]:
    r = c.req(name, "POST", "/v3/maintenance/alarm", {"action": "GET"})
    return [a.get("alarm", "NONE") for a in r.json().get("alarms", [])]


def _disarm_all(c: Cluster, name: str) -> None:
    """Disarm each listed alarm with the member id it was raised for (as etcdctl does)."""
    r = c.req(name, "POST", "/v3/maintenance/alarm", {"action": "GET"})
    for a in r.json().get("alarms", []):
        body = {"action": "DEACTIVATE", "alarm": a.get("alarm"), "memberID": a.get("memberID", "0")}
        assert c.req(name, "POST", "/v3/maintenance/alarm", body).status == 200


def _wait(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_allowed_browser_origin_may_write(tmp_path: Path) -> None:
    c = Cluster(tmp_path, 1, ["--cors", "http://console.example"])
    c.start_all()
    try:
        c.wait_leader()
        ok = {"Origin": "http://console.example"}
        r = c.req("n1", "PUT", "/v1/kv/from-browser", "x", headers=ok)
        assert (
            r.status == 200 and r.headers["access-control-allow-origin"] == "http://console.example"
        )
        r = c.req(
            "n1", "PUT", "/v1/kv/from-browser", "x", headers={"Origin": "http://evil.example"}
        )
        assert r.status == 403
    finally:
        c.close()
