"""etcdctl's membership commands and move-leader, on a cluster of their own (they add,
promote and remove members and move the leader, which would disturb other tests).

raftkv derives an added member's name from its peer URL (etcd's MemberAdd carries no
name): `member list` shows it at once, and that is the --name the new process must be
started with (etcd would list it as "unstarted" with an empty name until it starts).
The tests run in file order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from raftkv.devcluster import free_port
from tests.etcdctl.ctl import ETCDCTL, SKIP_REASON, Ctl, endpoints, retry
from tests.integration.cluster import Cluster, Member

if ETCDCTL is None:
    pytest.skip(SKIP_REASON, allow_module_level=True)

# etcdctl prints member ids with %16x here: space-padded.
ADDED = re.compile(r"^Member +([0-9a-f]+) added to cluster +([0-9a-f]+)$")


def add(ctl: Ctl, cluster: Cluster, label: str, learner: bool) -> tuple[Member, str]:
    """`member add` a new member (ports reserved here); returns it and its hex id. The
    Cluster learns it under the name the cluster gave it, which is its --name."""
    peer, client = free_port(), free_port()
    peer_url = f"http://127.0.0.1:{peer}"
    out = ctl.ok(
        "member", "add", label, f"--peer-urls={peer_url}", *(["--learner"] if learner else [])
    )
    head = out.splitlines()
    m = ADDED.match(head[0])
    assert m, out
    mid = m.group(1)
    # etcdctl prints the settings for the new member, etcd style.
    assert f'ETCD_NAME="{label}"' in head and 'ETCD_INITIAL_CLUSTER_STATE="existing"' in head
    assert f'ETCD_INITIAL_ADVERTISE_PEER_URLS="{peer_url}"' in head
    listed = {x["hex"]: x for x in ctl.members()}
    assert mid in listed, listed
    new = listed[mid]
    assert new["peerURLs"] == [peer_url] and bool(new.get("isLearner")) is learner
    name = new["name"]
    assert name.startswith("member-"), new
    member = Member(name, client, peer, cluster.root / name)
    cluster.members[name] = member
    return member, mid


def applied(ctl: Ctl, ep: str) -> int:
    (st,) = ctl.status(endpoints=[ep])
    return int(st["Status"].get("raftAppliedIndex", 0))  # omitted while 0


def caught_up(ctl: Ctl, cluster: Cluster, name: str, timeout: float) -> None:
    """Until the new member has applied what the others had when we started waiting."""
    target = max(int(s["Status"]["raftIndex"]) for s in ctl.status())
    ep = endpoints(cluster, [name])[0]
    retry(lambda: applied(ctl, ep) >= target, timeout, f"{name} applies index {target}")


def drop(ctl: Ctl, cluster: Cluster, name: str, mid: str) -> None:
    """Kill a member's process and remove it from the cluster if it is still listed.
    Killed first: a member that cannot apply keeps proposing its client URL (a conf
    change), and the leader refuses a removal while another conf change is pending."""
    cluster.kill(name)

    def gone() -> bool:
        if mid not in {m["hex"] for m in ctl.members()}:
            return True
        ctl.run("member", "remove", mid)
        return False

    retry(gone, 20, f"{name} ({mid}) removed")
    del cluster.members[name]


@pytest.fixture(scope="module")
def ctl(cluster: Cluster) -> Iterator[Ctl]:
    """One etcdctl over the three founding members for the whole module."""
    c = Ctl(endpoints(cluster, ["n1", "n2", "n3"]))
    try:
        yield c
    finally:
        c.close()


def test_learner_catches_up_from_the_log(ctl: Ctl, cluster: Cluster) -> None:
    # First in the module: the leader's log still starts at index 1, nothing compacted.
    member, mid = add(ctl, cluster, "early", learner=True)
    try:
        cluster.join(member.name)
        caught_up(ctl, cluster, member.name, 5)
    finally:
        drop(ctl, cluster, member.name, mid)


def test_member_add_promote_remove(ctl: Ctl, cluster: Cluster) -> None:
    assert [m["name"] for m in ctl.members()] == ["n1", "n2", "n3"]
    # Work around the bug above: compact the leader's log (--snapshot-count 200) so a
    # newcomer is caught up by a snapshot.
    leader = cluster.wait_leader()
    for i in range(260):
        assert cluster.put(leader, f"fill/{i}", "x").status == 200
    retry(
        lambda: all(
            (st := cluster.status(n)) and st["raft_first_index"] > 10 for n in cluster.running()
        ),
        30,
        "every member compacted its log",
    )
    ctl.ok("put", "before/join", "1")

    member, mid = add(ctl, cluster, "n4", learner=True)
    try:
        row = next(x for x in ctl.ok("member", "list").splitlines() if x.startswith(mid + ", "))
        assert row.endswith(", true"), row  # IS LEARNER
        cluster.join(member.name)
        caught_up(ctl, cluster, member.name, 30)
        new_ep = endpoints(cluster, [member.name])
        assert (
            ctl.ok("get", "before/join", "--consistency=s", endpoints=new_ep) == "before/join\n1\n"
        )
        (st,) = ctl.status(endpoints=new_ep)
        assert st["Status"].get("isLearner") is True

        out = ctl.ok("member", "promote", mid)
        assert re.fullmatch(rf"Member +{mid} promoted in cluster +[0-9a-f]+\n", out), out
        listed = {m["hex"]: m for m in ctl.members()}
        assert not listed[mid].get("isLearner") and len(listed) == 4
        # The promoted member serves linearizable reads and writes through etcdctl.
        assert ctl.ok("put", "after/promote", "2", endpoints=new_ep) == "OK\n"
        assert ctl.ok("get", "after/promote", endpoints=new_ep) == "after/promote\n2\n"
        every = ctl.run_json("endpoint", "status", "--cluster")
        assert len(every) == 4 and f"http://{new_ep[0]}" in {s["Endpoint"] for s in every}
        promote_again = ctl.fail("member", "promote", mid)
        assert promote_again.errors == ["Error: etcdserver: can only promote a learner member"], (
            str(promote_again)
        )

        out = ctl.ok("member", "remove", mid)
        assert re.fullmatch(rf"Member +{mid} removed from cluster +[0-9a-f]+\n", out), out
        assert [m["name"] for m in ctl.members()] == ["n1", "n2", "n3"]
    finally:
        drop(ctl, cluster, member.name, mid)
    assert ctl.ok("put", "after/remove", "3") == "OK\n"


def test_member_add_voter(ctl: Ctl, cluster: Cluster) -> None:
    """`member add` without --learner adds a voter (raftkv promotes it at once)."""
    assert [m["name"] for m in ctl.members()] == ["n1", "n2", "n3"]
    ctl.ok("put", "voter/before", "1")
    member, mid = add(ctl, cluster, "n5", learner=False)
    try:
        cluster.join(member.name)
        caught_up(ctl, cluster, member.name, 30)
        new_ep = endpoints(cluster, [member.name])
        assert ctl.ok("get", "voter/before", endpoints=new_ep) == "voter/before\n1\n"
        # (Asked of the member being removed, the call times out: the leader drops the
        # peer link as it applies the removal, before the forwarded call's answer.)
        out = ctl.ok("member", "remove", mid)
        assert re.fullmatch(rf"Member +{mid} removed from cluster +[0-9a-f]+\n", out), out
    finally:
        drop(ctl, cluster, member.name, mid)
    assert [m["name"] for m in ctl.members()] == ["n1", "n2", "n3"]


def test_member_update_is_refused(ctl: Ctl, cluster: Cluster) -> None:
    """raftkv does not change a member's peer URL (documented): a clear error."""
    m = ctl.members()[0]
    out = ctl.fail("member", "update", m["hex"], f"--peer-urls={m['peerURLs'][0]}")
    assert out.errors == [
        "Error: rpc error: code = Unimplemented desc = "
        "raftkv: a member's peer URL cannot be changed"
    ], str(out)
    unknown = ctl.fail("member", "update", "1234", "--peer-urls=http://127.0.0.1:1")
    assert unknown.errors == ["Error: etcdserver: member not found"], str(unknown)


def test_move_leader(ctl: Ctl, cluster: Cluster) -> None:
    ids = {int(m["ID"]): m for m in ctl.members()}
    assert sorted(m["name"] for m in ids.values()) == ["n1", "n2", "n3"]
    before = ctl.leader_id()
    target = next(i for i in ids if i != before)
    # etcdctl needs the leader among its endpoints.
    leader_ep = endpoints(cluster, [ids[before]["name"]])
    others = endpoints(cluster, [m["name"] for i, m in ids.items() if i != before])
    refused = ctl.fail("move-leader", f"{target:x}", endpoints=others)
    assert refused.errors and "no leader endpoint given at" in refused.errors[0], str(refused)
    out = ctl.ok("move-leader", f"{target:x}", endpoints=leader_ep)
    assert out == f"Leadership transferred from {before:x} to {target:x}\n"
    retry(lambda: ctl.leader_id() == target, 15, "every member sees the new leader")
    rows = [x.split(", ") for x in ctl.ok("endpoint", "status").splitlines()]
    assert [int(r[1], 16) for r in rows if r[4] == "true"] == [target]
    # With every endpoint given, etcdctl finds the leader itself.
    back = ctl.ok("move-leader", f"{before:x}")
    assert back == f"Leadership transferred from {target:x} to {before:x}\n"
    retry(lambda: ctl.leader_id() == before, 15, "leadership moved back")
    assert ctl.ok("put", "after/move", "ok") == "OK\n"
