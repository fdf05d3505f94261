"""Crashes, restarts and catch-up: no acknowledged write may ever be lost."""

from __future__ import annotations

import re
import threading
import time

import pytest

from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(150)


class Writer(threading.Thread):
    """Writes k<i> through the followers, retrying on 503; records what was acked."""

    def __init__(self, cluster: Cluster, targets: list[str]) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.targets = targets
        self.acked: dict[str, str] = {}
        self.stop_flag = threading.Event()
        self.failures = 0
        self.unexpected: list[tuple[int, bytes]] = []  # anything but 200 or 503

    def run(self) -> None:
        i = 0
        while not self.stop_flag.is_set():
            key, value = f"w/{i:05d}", f"v{i}"
            target = self.targets[i % len(self.targets)]
            r = self.cluster.try_req(target, "PUT", f"/v1/kv/{key}", body=value, timeout=5)
            if r is not None and r.status == 200:
                self.acked[key] = value
                i += 1
            else:
                if r is not None and r.status != 503:
                    self.unexpected.append((r.status, r.body))
                self.failures += 1
                time.sleep(0.05)


def _all_keys(cluster: Cluster, name: str) -> dict[str, str]:
    r = cluster.get(name, "w/", "?prefix")
    assert r.status == 200, r.body
    return {kv["key"]: kv["value"] for kv in r.json()["kvs"]}


def test_kill_leader_under_writes(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    survivors = cluster.followers(leader)
    w = Writer(cluster, survivors)
    w.start()
    time.sleep(1.5)
    before = len(w.acked)
    assert before > 0
    cluster.kill(leader)
    new_leader = cluster.wait_leader(20, among=survivors)
    assert new_leader != leader
    deadline = time.monotonic() + 20
    while len(w.acked) < before + 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    w.stop_flag.set()
    w.join(10)
    assert w.unexpected == []
    assert len(w.acked) >= before + 30, "writes did not resume after failover"
    for name in survivors:
        assert _all_keys(cluster, name) == w.acked
    # The crashed leader restarts from its data dir and catches up.
    cluster.start(leader)
    st = cluster.status(new_leader)
    assert st is not None
    cluster.wait_applied([leader], st["applied"], 30)
    got = cluster.get(leader, "w/", "?prefix&serializable").json()
    assert {kv["key"]: kv["value"] for kv in got["kvs"]} == w.acked
    assert cluster.wait_leader(20) in cluster.members


def test_full_restart_keeps_data_and_revisions(cluster: Cluster) -> None:
    for i in range(20):
        assert cluster.put(f"n{i % 3 + 1}", f"r/{i}", str(i)).status == 200
    before = cluster.get("n1", "r/", "?prefix").json()
    cluster.stop_all()
    assert cluster.running() == []
    cluster.start_all()
    cluster.wait_leader(30)
    for name in cluster.members:
        after = cluster.get(name, "r/", "?prefix").json()
        assert after["kvs"] == before["kvs"]
        assert after["revision"] == before["revision"]
    assert cluster.put("n2", "r/new", "x").json()["revision"] == before["revision"] + 1


def test_graceful_stop_of_leader_transfers_leadership(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    assert cluster.stop(leader) == 0
    rest = cluster.followers(leader)
    new = cluster.wait_leader(10, among=rest)
    assert new != leader
    assert cluster.put(rest[0], "after", "stop").status == 200


def test_lagging_follower_catches_up_by_snapshot(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    lagger = cluster.followers(leader)[0]
    cluster.kill(lagger)
    # More than snapshot-count (200) entries: the leader compacts past the lagger.
    for i in range(450):
        r = cluster.put(leader, f"s/{i:04d}", "x" * 50)
        assert r.status == 200, r.body
    st = cluster.status(leader)
    assert st is not None and st["raft_first_index"] > 10
    cluster.start(lagger)
    cluster.wait_applied([lagger], st["applied"], 30)
    got = cluster.get(lagger, "s/", "?prefix&count_only&serializable").json()
    assert got["count"] == 450
    metrics = cluster.req(lagger, "GET", "/metrics").body.decode()
    m = re.search(r"^raftkv_snapshots_received_total ([0-9.e+]+)$", metrics, re.M)
    assert m is not None and float(m.group(1)) >= 1, metrics
    m = re.search(r"^raftkv_snap_install_duration_seconds_count ([0-9.e+]+)$", metrics, re.M)
    assert m is not None and float(m.group(1)) >= 1, metrics
