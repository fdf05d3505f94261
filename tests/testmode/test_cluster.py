"""Test mode against real `raftkv serve` processes: refusal without test mode, the debug
endpoints, failpoints, the clock hook, lazy fsync, and the mutations that show up at the
client API (each in a short, bounded scenario)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from raftkv import testmode as tm
from raftkv.storage.env import open_env
from raftkv.storage.logstore import LogStore
from tests.integration.cluster import Cluster
from tests.testmode.conftest import MakeCluster

CORE = ",".join(tm.CORE_BUG_MUTATIONS)


def _wait(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _debug(c: Cluster, name: str, path: str, body: dict[str, Any] | None = None) -> Any:
    r = c.req(name, "POST" if body is not None else "GET", path, body=body)
    assert r.status == 200, (r.status, r.body)
    return r.json()


def _exit_code(c: Cluster, name: str, timeout: float = 10) -> int:
    p = c.members[name].proc
    assert p is not None
    return p.wait(timeout)


@pytest.mark.parametrize("var", tm.GATED_ENV)
def test_serve_refuses_test_only_env_without_test_mode(tmp_path: Path, var: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTKV_")}
    env[var] = "1"
    data = tmp_path / "n1"
    cmd = [sys.executable, "-m", "raftkv.cli", "serve", "--name", "n1", "--data-dir", str(data)]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=30)
    assert p.returncode == 2
    assert f"{var} set without RAFTKV_TEST_MODE=1" in p.stderr.decode()
    assert not data.exists()  # refused before touching the data dir


def test_debug_endpoints_are_404_without_test_mode(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, test_mode=False)
    for method, path in (
        ("GET", "/debug/status"),
        ("GET", "/debug/log"),
        ("GET", "/debug/hash"),
        ("POST", "/debug/failpoints"),
        ("POST", "/debug/clock"),
        ("POST", "/debug/fsync"),
    ):
        r = c.req("n1", method, path, body={} if method == "POST" else None)
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", (path, r.body)


def test_debug_status_log_hash_and_crash_failpoint(make_cluster: MakeCluster) -> None:
    c = make_cluster(3)
    leader = c.wait_leader()
    revs = [c.put(leader, f"k{i}", f"v{i}").json()["revision"] for i in range(3)]
    index = _debug(c, leader, "/debug/status")["applied"]
    c.wait_applied(list(c.members), index)
    sts = {n: _debug(c, n, "/debug/status") for n in c.members}
    assert [n for n, s in sts.items() if s["role"] == "leader"] == [leader]
    assert len({s["term"] for s in sts.values()}) == 1
    st = sts[leader]
    assert st["revision"] == revs[-1] and st["commit"] >= st["applied"] >= index
    assert st["last_index"] >= st["commit"] and st["snapshot_index"] <= st["applied"]

    log = _debug(c, leader, "/debug/log?from=1")
    puts = [e for e in log["entries"] if e["type"] == "put"]
    assert len(puts) == 3 and len({e["request_id"] for e in puts}) == 3
    assert all(len(e["request_id"]) == 32 for e in puts)
    assert {e["type"] for e in log["entries"]} >= {"conf_change", "empty", "put"}
    assert [e["index"] for e in log["entries"]] == list(range(1, log["commit"] + 1))

    hashes = {n: _debug(c, n, "/debug/hash") for n in c.members}
    assert len({(h["hash"], h["applied"], h["revision"]) for h in hashes.values()}) == 1
    assert hashes[leader]["keys"] == 3

    victim = c.followers(leader)[0]
    armed = _debug(c, victim, "/debug/failpoints", {"after_apply_before_ack": "crash"})
    assert armed["failpoints"] == {"after_apply_before_ack": "crash"}
    assert c.put(leader, "k3", "v3").status == 200  # the other follower makes the quorum
    assert _exit_code(c, victim) == tm.CRASH_EXIT_CODE
    c.start(victim)  # no failpoint armed after a restart (it was armed at runtime)
    # The restarted member publishes its client URL through the log: wait until both
    # have applied the same index before comparing states.
    deadline = time.monotonic() + 15
    while True:
        index = _debug(c, leader, "/debug/status")["applied"]
        c.wait_applied([victim], index)
        theirs, ours = _debug(c, victim, "/debug/hash"), _debug(c, leader, "/debug/hash")
        if theirs["applied"] == ours["applied"] or time.monotonic() > deadline:
            break
    assert theirs == ours


def _lease_key_alive(c: Cluster, name: str) -> bool:
    return c.get(name, "leased", "?serializable").status == 200


def test_clock_offset_expires_leases_early_and_lazy_fsync_restore_point(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    c = make_cluster(1, lazy_fsync="1")
    lease = c.req("n1", "POST", "/v1/lease/grant", body={"ttl": 30}).json()["id"]
    assert c.put("n1", "leased", "x", f"?lease={lease}").status == 200
    time.sleep(1.0)
    assert _lease_key_alive(c, "n1")  # 30 s TTL: alive on an unskewed clock
    t0 = time.monotonic()
    assert _debug(c, "n1", "/debug/clock", {"offset_ms": 60_000})["clock"]["offset_ms"] == 60_000
    _wait(lambda: not _lease_key_alive(c, "n1"), 5, "the lease to expire after the bump")
    assert time.monotonic() - t0 < 5  # far sooner than the 30 s TTL

    # Lazy fsync: a copy taken at an fsync point is what survives a simulated power loss.
    assert _debug(c, "n1", "/debug/status")["lazy_fsync"] is True
    assert c.put("n1", "durable", "1").status == 200
    copy = tmp_path / "restore-point"
    copy.mkdir()
    synced = _debug(c, "n1", "/debug/fsync", {"copy_to": str(copy)})
    assert _debug(c, "n1", "/debug/status")["last_fsync"] == synced
    assert c.put("n1", "unsynced", "1").status == 200
    c.kill("n1")
    for env_dir in ("log", "state"):  # the two LMDB environments of a data dir
        db = c.members["n1"].data_dir / env_dir
        shutil.rmtree(db)
        shutil.copytree(copy / env_dir, db)
    c.start("n1")
    c.wait_leader()
    assert c.get("n1", "durable").status == 200
    assert c.get("n1", "unsynced").status == 404
    assert _debug(c, "n1", "/debug/status")["applied"] >= synced["applied"]


def test_follower_local_reads_answer_without_a_quorum(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, mutations="follower-local-reads")
    leader = c.wait_leader()
    assert c.put(leader, "k", "old").status == 200
    survivor, other = c.followers(leader)
    c.wait_applied([survivor], _debug(c, leader, "/debug/status")["applied"])
    c.kill(leader)
    c.kill(other)
    r = c.get(survivor, "k")  # linearizable by default; a majority is down
    assert r.status == 200 and r.json()["value"] == "old"


def _watch_lines(c: Cluster, name: str, path: str, n: int) -> list[dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", c.members[name].client_port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        out = []
        while len(out) < n:
            line = resp.readline()
            assert line, "watch stream ended"
            msg = json.loads(line)
            if "events" in msg:
                out.append(msg)
        return out
    finally:
        conn.close()


def test_watch_mutations_and_core_bug_wiring(make_cluster: MakeCluster) -> None:
    c = make_cluster(1, mutations=f"watch-resume-skip,watch-split-revision,{CORE}")
    st = _debug(c, "n1", "/debug/status")
    assert set(st["core_bugs"]) == set(tm.CORE_BUG_MUTATIONS.values())
    r1 = c.put("n1", "w/a", "1").json()["revision"]
    r2 = c.put("n1", "w/b", "1").json()["revision"]
    first = _watch_lines(c, "n1", f"/v1/watch/w/?prefix&start_revision={r1}", 1)[0]
    assert first["revision"] == r2  # revision r1's event was skipped

    deleted = c.req("n1", "DELETE", "/v1/kv/w/?prefix").json()
    assert deleted["deleted"] == 2
    msgs = _watch_lines(c, "n1", f"/v1/watch/w/?prefix&start_revision={deleted['revision'] - 1}", 2)
    assert [m["revision"] for m in msgs] == [deleted["revision"]] * 2  # one revision, torn
    assert [len(m["events"]) for m in msgs] == [1, 1]


def test_no_persist_term_vote_leaves_the_start_term_on_disk(make_cluster: MakeCluster) -> None:
    c = make_cluster(3, mutations="no-persist-term-vote")
    leader = c.wait_leader()
    c.kill(leader)
    new = c.wait_leader(among=c.followers(leader))
    term = _debug(c, new, "/debug/status")["term"]
    assert term >= 3  # bootstrap term 1, then at least two elections
    for n in c.running():
        c.kill(n)
    for m in c.members.values():
        env = open_env(m.data_dir / "log")
        try:
            hs = LogStore(env).hard_state()
        finally:
            env.close()
        assert (hs.term, hs.vote) == (1, 0), m.name  # the terms it voted in are forgotten


def test_non_atomic_apply_skips_a_committed_write_after_a_crash(
    make_cluster: MakeCluster,
) -> None:
    c = make_cluster(3, mutations="non-atomic-apply")
    leader = c.wait_leader()
    victim = c.followers(leader)[0]
    # Arm only once the victim applied the leader's no-op, so the crash hits the put.
    c.wait_applied([victim], _debug(c, leader, "/debug/status")["applied"])
    _debug(c, victim, "/debug/failpoints", {"between_state_and_applied": "crash"})
    assert c.put(leader, "k", "v").status == 200
    assert _exit_code(c, victim) == tm.CRASH_EXIT_CODE
    c.start(victim)
    c.wait_applied([victim], _debug(c, leader, "/debug/status")["applied"])
    assert c.get(leader, "k", "?serializable").status == 200
    assert c.get(victim, "k", "?serializable").status == 404  # lost on this replica
    assert _debug(c, victim, "/debug/hash")["hash"] != _debug(c, leader, "/debug/hash")["hash"]


def test_ack_before_fsync_loses_an_acknowledged_write(
    make_cluster: MakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = make_cluster(3, mutations="ack-before-fsync")
    leader = c.wait_leader()
    followers = c.followers(leader)
    c.wait_applied(followers, _debug(c, leader, "/debug/status")["applied"])
    # Acks leave at once; the followers then stall before persisting (20 s: long
    # enough for a loaded CI machine to finish the put and the kills inside it).
    for f in followers:
        _debug(c, f, "/debug/failpoints", {"after_send_before_persist": "sleep(20000)"})
    assert c.put(leader, "k", "acked").status == 200
    for f in followers:
        c.kill(f)  # inside the stall: the acked entry never reached their disks
    c.kill(leader)
    for f in followers:
        c.start(f)
    new = c.wait_leader(30, among=followers)
    assert c.get(new, "k").status == 404  # an acknowledged write is gone


@pytest.mark.parametrize("mutated", [False, True])
def test_client_request_id_retry_is_applied_once_unless_no_dedup(
    make_cluster: MakeCluster, mutated: bool
) -> None:
    """A client that retries a put-if-absent on another node with the same request id
    gets the first attempt's outcome (same revision) from the de-duplication table;
    with no-dedup the retry is applied again and its compare fails (412) although
    the first attempt wrote the key: the double apply a retrying client would see."""
    c = make_cluster(3, **({"mutations": "no-dedup"} if mutated else {}))
    leader = c.wait_leader()
    follower = c.followers(leader)[0]
    rid = os.urandom(16).hex()
    path = f"/v1/kv/k?if_absent&request_id={rid}"
    first = c.req(leader, "PUT", path, body="v1")
    assert first.status == 200, first.body
    # The follower must have applied the first attempt before the retry reaches it: a
    # node resolves every waiter of an id at that id's first apply, so a retry waiting
    # on a lagging follower gets the first outcome even with no-dedup (a CI flake).
    deadline = time.monotonic() + 10
    while c.get(follower, "k", "?serializable").status != 200:
        assert time.monotonic() < deadline, "the follower never applied the first put"
        time.sleep(0.02)
    retry = c.req(follower, "PUT", path, body="v1")
    if mutated:
        assert retry.status == 412, retry.body
    else:
        assert retry.status == 200, retry.body
        assert retry.json()["revision"] == first.json()["revision"]
    assert c.req(leader, "PUT", "/v1/kv/k?request_id=zz", body="x").status == 400
