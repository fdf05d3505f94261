"""Membership survives log compaction: it is part of the state machine's snapshot.

A member that was down while another joined, and that catches up by snapshot (the
conf-change entry carrying the newcomer's address is compacted away), must still
learn the newcomer's address; and a removed member's id is never handed out again.
"""

from __future__ import annotations

from tests.integration.cluster import Cluster
from tests.integration.test_membership import member_ids, retry


def test_member_added_while_down_is_learned_from_the_snapshot(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    down = next(n for n in c.followers(leader))
    c.stop(down)
    new = c.add_member("n4")
    body = {
        "name": "n4",
        "peer_url": f"http://127.0.0.1:{new.peer_port}",
        "client_url": f"http://127.0.0.1:{new.client_port}",
    }
    r = c.req(leader, "POST", "/v1/members", body=body)
    assert r.status == 201, r.body
    c.join("n4")
    retry(lambda: (st := c.status("n4")) and st["applied"] > 0, 60, "n4 joined")
    # Push the log past two snapshot thresholds (--snapshot-count 200) so the
    # conf-change entry that carried n4's address is compacted away.
    for i in range(450):
        assert c.put(leader, f"fill/{i}", "x").status == 200
    c.start(down)
    st = c.status(leader)
    assert st is not None
    c.wait_applied([down], st["commit"], timeout=60)
    members = member_ids(c, down)
    assert "n4" in members, members
    assert members["n4"]["peer_url"] == body["peer_url"]
    # The restored member dials n4: removing n4 later must still commit everywhere,
    # and the restored member reports n4's client URL like every other member.
    assert members["n4"]["client_url"] == body["client_url"]

    # Remove n4; the next member added must not reuse its id (4).
    r = c.req(leader, "DELETE", "/v1/members/4")
    assert r.status == 200, r.body
    extra = c.add_member("n5")
    r = c.req(
        leader,
        "POST",
        "/v1/members",
        body={"name": "n5", "peer_url": f"http://127.0.0.1:{extra.peer_port}"},
    )
    assert r.status == 201, r.body
    assert r.json()["member"]["id"] == 5
