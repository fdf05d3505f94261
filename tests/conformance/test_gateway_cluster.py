"""The etcd gateway on a 3-member raftkv: membership changes and leader transfer.

Not differential (that would need a 3-member etcd whose member ids differ anyway);
it checks the etcd-shaped answers and that the changes really happen, sent to a
follower so the forwarding path to the leader is what is exercised.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.harness import free_port
from tests.integration.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    c = Cluster(tmp_path, size=3)
    c.start_all()
    try:
        c.wait_leader()
        yield c
    finally:
        c.close()


def _post(c: Cluster, name: str, path: str, body: Any) -> tuple[int, Any]:
    r = c.req(name, "POST", path, body=json.dumps(body))
    return r.status, json.loads(r.body)


def _members(c: Cluster, name: str) -> list[dict[str, Any]]:
    status, body = _post(c, name, "/v3/cluster/member/list", {})
    assert status == 200
    assert "revision" not in body["header"]
    return body["members"]


def test_transfer_then_remove_then_add_learner(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    f1, f2 = c.followers(leader)
    members = _members(c, f1)
    assert sorted(m["name"] for m in members) == ["n1", "n2", "n3"]
    ids = {m["name"]: m["ID"] for m in members}
    assert all(isinstance(i, str) and i.isdigit() for i in ids.values())

    # leader transfer asked on a follower, to the other follower
    status, body = _post(c, f1, "/v3/maintenance/transfer-leadership", {"targetID": ids[f2]})
    assert status == 200, body
    assert c.wait_leader() == f2
    status, st = _post(c, f1, "/v3/maintenance/status", {})
    assert st["leader"] == ids[f2]

    # remove the old leader through a follower; every listing then lacks it
    status, body = _post(c, f1, "/v3/cluster/member/remove", {"ID": ids[leader]})
    assert status == 200, body
    assert sorted(m["name"] for m in body["members"]) == sorted([f1, f2])
    c.stop(leader)
    status, body = _post(c, f1, "/v3/cluster/member/remove", {"ID": ids[leader]})
    assert (status, body["error"]) == (404, "etcdserver: member not found")

    # add a learner (named after its peer URL), then promote it
    peer = f"http://127.0.0.1:{free_port()}"
    status, body = _post(c, f1, "/v3/cluster/member/add", {"peerURLs": [peer], "isLearner": True})
    assert status == 200, body
    new = body["member"]
    assert new["peerURLs"] == [peer] and new["isLearner"] is True
    assert new["name"].startswith("member-")
    listed = {m["ID"]: m for m in _members(c, f2)}
    assert listed[new["ID"]].get("isLearner") is True
    status, body = _post(c, f1, "/v3/cluster/member/add", {"peerURLs": [peer]})
    assert (status, body["error"]) == (412, "etcdserver: Peer URLs already exists")
    status, body = _post(c, f1, "/v3/cluster/member/promote", {"ID": new["ID"]})
    assert status == 200, body
    promoted = {m["ID"]: m for m in body["members"]}[new["ID"]]
    assert "isLearner" not in promoted
    status, body = _post(c, f1, "/v3/cluster/member/promote", {"ID": new["ID"]})
    assert (status, body["error"]) == (412, "etcdserver: can only promote a learner member")
    # the never-started member is removed again so the cluster keeps its quorum
    status, body = _post(c, f2, "/v3/cluster/member/remove", {"ID": new["ID"]})
    assert status == 200, body
    deadline = time.monotonic() + 10
    while len(_members(c, f1)) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(_members(c, f1)) == 2
