"""Runtime membership over HTTP: add a learner, promote it, remove the leader, transfer.

All of it happens under a background write load, and every acknowledged write must
still be readable at the end (a membership change must never lose a committed entry).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS


@pytest.fixture
def cluster5(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path, 5, list(FAST_ARGS))
    c.start_all()
    try:
        c.wait_leader(30)
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


class Writer(threading.Thread):
    """Puts load/<i> = i through random running members; records what was acknowledged."""

    def __init__(self, c: Cluster) -> None:
        super().__init__(daemon=True)
        self.c = c
        self.acked: dict[str, str] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            names = self.c.running()
            if not names:
                time.sleep(0.05)
                continue
            key, value = f"load/{i:06d}", str(i)
            r = self.c.try_req(random.choice(names), "PUT", f"/v1/kv/{key}", body=value, timeout=5)
            if r is not None and r.status == 200:
                self.acked[key] = value
            i += 1


def member_ids(c: Cluster, via: str) -> dict[str, dict]:
    r = c.req(via, "GET", "/v1/members")
    assert r.status == 200, r.body
    return {m["name"]: m for m in r.json()["members"]}


def retry(fn, timeout: float = 30, what: str = ""):  # type: ignore[no-untyped-def]
    """Call fn until it returns a truthy value (membership changes take a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = fn()
        if out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def test_add_promote_remove_leader_under_load(cluster5: Cluster) -> None:
    c = cluster5
    w = Writer(c)
    w.start()
    try:
        leader = c.wait_leader()
        follower = c.followers(leader)[0]
        new = c.add_member("n6")
        body = {
            "name": "n6",
            "peer_url": f"http://127.0.0.1:{new.peer_port}",
            "client_url": f"http://127.0.0.1:{new.client_port}",
        }
        r = c.req(follower, "POST", "/v1/members", body=body)  # proxied to the leader
        assert r.status == 201, r.body
        added = r.json()["member"]
        assert added["id"] == 6 and added["is_learner"] is True
        assert r.json()["initial_cluster_state"] == "existing"
        dup = c.req(follower, "POST", "/v1/members", body=body)
        assert dup.status == 409, dup.body
        assert dup.json()["error"]["code"] == "member_exists"
        bad = c.req(follower, "POST", "/v1/members", body={"name": "x", "peer_url": "nope"})
        assert bad.status == 400 and "error" in bad.json()

        # A learner cannot take leadership.
        r = c.req(leader, "POST", "/v1/leader/transfer", body={"to": 6})
        assert r.status == 412 and r.json()["error"]["code"] == "not_voter"

        c.join("n6")
        retry(lambda: (st := c.status("n6")) and st["applied"] > 0 and st["leader"], 60, "join")
        lead_st = c.status(c.wait_leader())
        assert lead_st is not None
        c.wait_applied(["n6"], lead_st["commit"], timeout=30)

        r = retry(
            lambda: (
                (x := c.try_req(follower, "POST", "/v1/members/6/promote"))
                and x.status != 503
                and x
            ),
            30,
            "promote",
        )
        assert r.status == 200, r.body
        assert r.json()["member"]["is_learner"] is False
        again = c.req(follower, "POST", "/v1/members/6/promote")
        assert again.status == 412, again.body
        assert c.req(follower, "POST", "/v1/members/99/promote").status == 404

        # Remove the current leader: it steps down after the change applies, then exits.
        leader = c.wait_leader()
        lid = member_ids(c, leader)[leader]["id"]
        via = next(n for n in c.followers(leader) if n != "n6")
        r = c.req(via, "DELETE", f"/v1/members/{lid}")
        assert r.status == 200, r.body
        assert r.json()["removed"]["name"] == leader
        proc = c.members[leader].proc
        assert proc is not None
        assert proc.wait(20) == 0, "a removed member exits cleanly"
        new_leader = c.wait_leader(30)
        assert new_leader != leader
        time.sleep(1.0)  # keep writing through the new leader for a moment
    finally:
        w.stop.set()
        w.join(30)

    survivors = c.running()
    assert sorted(survivors) == sorted({"n1", "n2", "n3", "n4", "n5", "n6"} - {leader})
    for n in survivors:
        ms = retry(lambda n=n: len(member_ids(c, n)) == 5 and member_ids(c, n), 20, "members")
        assert leader not in ms and ms["n6"]["is_learner"] is False
    assert len(w.acked) > 20, "the load kept making progress"
    r = c.get(new_leader, "load/", "?prefix")
    assert r.status == 200
    got = {kv["key"]: kv["value"] for kv in r.json()["kvs"]}
    lost = {k for k in w.acked if got.get(k) != w.acked[k]}
    assert not lost, f"acknowledged writes lost: {sorted(lost)[:10]}"
    # The new member serves the same data (it learned everything by replication).
    st = c.status(new_leader)
    assert st is not None
    c.wait_applied(["n6"], st["commit"])
    r6 = c.get("n6", "load/", "?prefix&count_only&serializable")
    assert r6.json()["count"] == r.json()["count"]


def test_leader_transfer(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    target = c.followers(leader)[0]
    ids = member_ids(c, leader)
    r = c.req(target, "POST", "/v1/leader/transfer", body={"to": ids[target]["id"]})
    assert r.status == 200, r.body
    assert r.json()["leader"] == ids[target]["id"]
    assert c.wait_leader() == target
    assert c.put(leader, "after-transfer", "ok").status == 200
    r = c.req(target, "POST", "/v1/leader/transfer", body={"to": 42})
    assert r.status == 412 and r.json()["error"]["code"] == "not_voter"
    r = c.req(target, "POST", "/v1/leader/transfer", body={"to": "x"})
    assert r.status == 400 and r.json()["error"]["code"] == "bad_request"
