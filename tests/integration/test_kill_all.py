"""kill -9 of every node at once: acknowledged writes and leases survive the restart."""

from __future__ import annotations

import threading
import time

from tests.integration.cluster import Cluster


def test_kill_all_under_writes_loses_no_acknowledged_write(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    grant = c.req(leader, "POST", "/v1/lease/grant", body={"id": 4242, "ttl": 60})
    assert grant.status == 200, grant.body
    assert c.put(leader, "leased/a", "v", "?lease=4242").status == 200

    acked: dict[str, str] = {}
    stop = threading.Event()

    def writer(node: str, tag: str) -> None:
        i = 0
        while not stop.is_set():
            key, value = f"k/{tag}/{i:05d}", f"{tag}{i}"
            r = c.try_req(node, "PUT", f"/v1/kv/{key}", body=value, timeout=3)
            if r is not None and r.status == 200:
                acked[key] = value
            i += 1

    threads = [threading.Thread(target=writer, args=(n, n), daemon=True) for n in c.members]
    for t in threads:
        t.start()
    time.sleep(2.0)
    for name in list(c.members):  # all at once, mid-stream
        c.kill(name)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 20, "the load did not get going"

    c.start_all()
    leader = c.wait_leader(30)
    st = c.status(leader)
    assert st is not None
    c.wait_applied(list(c.members), st["commit"], timeout=30)
    for name in c.members:
        got = c.get(name, "k/", "?prefix&serializable").json()
        stored = {kv["key"]: kv["value"] for kv in got["kvs"]}
        missing = {k for k in acked if stored.get(k) != acked[k]}
        assert not missing, f"{name} lost acknowledged writes: {sorted(missing)[:5]}"
    lease = c.req(leader, "GET", "/v1/lease/4242?keys")
    assert lease.status == 200, lease.body
    assert "leased/a" in str(lease.json())
    assert c.get(leader, "leased/a").status == 200
