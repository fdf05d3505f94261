"""Key-value API through every member, followers included."""

from __future__ import annotations

import base64

import pytest

from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(90)


def test_put_get_delete_through_every_node(cluster: Cluster) -> None:
    names = list(cluster.members)
    for i, writer in enumerate(names):
        r = cluster.put(writer, f"k{i}", f"v{i}")
        assert r.status == 200, r.body
        assert r.json()["revision"] >= 2
        for reader in names:  # linearizable: visible everywhere right after the ack
            g = cluster.get(reader, f"k{i}")
            assert g.status == 200, g.body
            body = g.json()
            assert body["value"] == f"v{i}" and body["key"] == f"k{i}"
            assert body["version"] == 1 and body["raft_term"] >= 2
    leader = cluster.wait_leader()
    follower = cluster.followers(leader)[0]
    d = cluster.req(follower, "DELETE", "/v1/kv/k0?prev_kv")
    assert d.status == 200 and d.json()["deleted"] == 1
    assert d.json()["prev_kvs"][0]["value"] == "v0"
    for reader in names:
        assert cluster.get(reader, "k0").status == 404
    assert cluster.req(leader, "DELETE", "/v1/kv/k0").json()["deleted"] == 0


def test_prefix_range_limit_and_flags(cluster: Cluster) -> None:
    for k in ("app/a", "app/b", "app/c", "other"):
        assert cluster.put("n2", k, k.upper()).status == 200
    r = cluster.get("n3", "app/", "?prefix").json()
    assert [kv["key"] for kv in r["kvs"]] == ["app/a", "app/b", "app/c"]
    assert r["count"] == 3 and not r["more"]
    r = cluster.get("n1", "app/", "?prefix&limit=2&keys_only").json()
    assert [kv["key"] for kv in r["kvs"]] == ["app/a", "app/b"] and r["more"]
    assert "value" not in r["kvs"][0]
    assert cluster.get("n1", "app/", "?prefix&count_only").json()["count"] == 3
    r = cluster.get("n1", "app/a", "?range_end=app/c").json()
    assert [kv["key"] for kv in r["kvs"]] == ["app/a", "app/b"]
    assert cluster.get("n2", "", "?prefix&serializable").json()["count"] >= 4
    d = cluster.req("n3", "DELETE", "/v1/kv/app/?prefix").json()
    assert d["deleted"] == 3
    assert cluster.get("n1", "app/", "?prefix").json()["count"] == 0


def test_binary_values_and_raw(cluster: Cluster) -> None:
    blob = bytes(range(256)) * 4
    assert cluster.put("n1", "bin", blob).status == 200
    r = cluster.get("n2", "bin").json()
    assert r["value"] is None and base64.b64decode(r["value_b64"]) == blob
    raw = cluster.get("n3", "bin", "?raw")
    assert raw.status == 200 and raw.body == blob


def test_revisions_history_and_versions(cluster: Cluster) -> None:
    r1 = cluster.put("n1", "h", "1").json()["revision"]
    cluster.put("n2", "h", "2")
    cur = cluster.get("n3", "h").json()
    assert cur["value"] == "2" and cur["version"] == 2 and cur["create_revision"] == r1
    old = cluster.get("n3", "h", f"?revision={r1}").json()
    assert old["value"] == "1"
    p = cluster.put("n3", "h", "3", "?prev_kv").json()
    assert p["prev_kv"]["value"] == "2"


def test_compare_and_swap(cluster: Cluster) -> None:
    assert cluster.put("n2", "lock", "me", "?if_absent").status == 200
    r = cluster.put("n3", "lock", "you", "?if_absent")
    assert r.status == 412
    assert r.json()["current"]["value"] == "me" and r.json()["error"]["code"] == "compare_failed"
    mod = cluster.get("n1", "lock").json()["mod_revision"]
    assert cluster.put("n1", "lock", "x", f"?if_mod_revision={mod}").status == 200
    assert cluster.put("n1", "lock", "y", f"?if_mod_revision={mod}").status == 412
    assert cluster.put("n2", "lock", "z", "?if_version=2").status == 200
    assert cluster.put("n2", "lock", "w", "?if_version=2").status == 412
    assert cluster.put("n3", "lock", "v", "?if_value=z").status == 200
    assert cluster.req("n3", "DELETE", "/v1/kv/lock?if_value=nope").status == 412
    assert cluster.req("n1", "DELETE", "/v1/kv/lock?if_value=v").json()["deleted"] == 1
    assert cluster.put("n3", "missing", "v", "?if_version=1").json()["current"] is None


def test_txn(cluster: Cluster) -> None:
    cluster.put("n1", "acct", "100")
    txn = {
        "compare": [{"key": "acct", "target": "VALUE", "result": "EQUAL", "value": "100"}],
        "success": [
            {"put": {"key": "acct", "value": "50"}},
            {"put": {"key_b64": base64.b64encode(b"\xffbin").decode(), "value": "x"}},
            {"range": {"key": "acct"}},
        ],
        "failure": [{"range": {"key": "acct"}}],
    }
    r = cluster.req("n2", "POST", "/v1/txn", txn)
    assert r.status == 200, r.body
    body = r.json()
    assert body["succeeded"] is True
    assert body["responses"][2]["kvs"][0]["value"] == "50"
    r = cluster.req("n3", "POST", "/v1/txn", txn).json()
    assert r["succeeded"] is False and r["responses"][0]["kvs"][0]["value"] == "50"
    guard = {
        "compare": [{"key": "acct", "target": "MOD", "result": "<", "mod_revision": 1000}],
        "success": [{"delete": {"key": "acct", "prev_kv": True}}],
    }
    r = cluster.req("n1", "POST", "/v1/txn", guard).json()
    assert r["succeeded"] and r["responses"][0]["deleted"] == 1


def test_compact_and_status(cluster: Cluster) -> None:
    revs = [cluster.put("n1", "c", str(i)).json()["revision"] for i in range(3)]
    r = cluster.req("n2", "POST", "/v1/compact", {"revision": revs[1]})
    assert r.status == 200, r.body
    old = cluster.get("n3", "c", f"?revision={revs[0]}")
    assert old.status == 400 and "compacted" in old.json()["error"]["message"]
    st = cluster.status("n1")
    assert st is not None
    assert st["revision"] >= revs[2] and st["leader"] in (1, 2, 3) and st["db_size"] > 0
    m = cluster.req("n2", "GET", "/v1/members").json()["members"]
    assert [x["name"] for x in m] == ["n1", "n2", "n3"] and sum(x["is_leader"] for x in m) == 1
    for path in ("/health", "/readyz", "/livez"):
        assert cluster.req("n3", "GET", path).status == 200
    metrics = cluster.req("n1", "GET", "/metrics").body.decode()
    assert "raftkv_server_proposals_applied_total" in metrics
    assert "raftkv_proposals_total" in metrics
