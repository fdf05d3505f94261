"""`raftkv <command>` as a subprocess, the way scripts and operators use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client.conftest import endpoints
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(120)


def ctl(
    c: Cluster, *args: str, input: str | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAFTKV_ENDPOINTS": ",".join(endpoints(c))}
    return subprocess.run(
        [sys.executable, "-m", "raftkv.cli", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env=env,
    )


def ok_json(c: Cluster, *args: str, input: str | None = None) -> Any:
    r = ctl(c, "-w", "json", *args, input=input)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_kv_txn_lease_compact(cluster: Cluster) -> None:
    c = cluster
    assert ctl(c, "put", "cli/a", "hello").stdout.strip() == "OK"
    assert ctl(c, "get", "cli/a").stdout.splitlines() == ["cli/a", "hello"]
    ctl(c, "put", "cli/b", "world")
    got = ok_json(c, "get", "cli/", "--prefix")
    assert [kv["value"] for kv in got["kvs"]] == ["hello", "world"]
    body = {
        "compare": [{"key": "cli/a", "target": "VALUE", "result": "EQUAL", "value": "hello"}],
        "success": [{"put": {"key": "cli/a", "value": "txn"}}],
    }
    assert ok_json(c, "txn", input=json.dumps(body))["succeeded"] is True
    r = ctl(c, "txn", input=json.dumps(body))
    assert r.returncode == 1 and r.stdout.startswith("FAILURE")
    lease = ok_json(c, "lease", "grant", "30")
    lid = lease["id_hex"]
    ctl(c, "put", "cli/l", "v", "--lease", lid)
    ttl = ok_json(c, "lease", "ttl", lid, "--keys")
    assert ttl["keys"] == ["cli/l"] and ttl["granted_ttl"] == 30
    assert "keepalived" in ctl(c, "lease", "keepalive", "--once", lid).stdout
    assert lease["id"] in ok_json(c, "lease", "list")["leases"]
    assert ctl(c, "lease", "revoke", lid).returncode == 0
    assert ok_json(c, "get", "cli/l")["count"] == 0
    assert ok_json(c, "del", "cli/", "--prefix")["deleted"] == 2
    rev = ok_json(c, "put", "cli/x", "1")["revision"]
    assert ok_json(c, "compact", str(rev))["compact_revision"] == rev
    r = ctl(c, "lease", "keepalive", "--once", lid)
    assert r.returncode == 1 and "not found" in r.stderr


def test_watch_replays_history(cluster: Cluster) -> None:
    c = cluster
    rev = ok_json(c, "put", "cw/a", "1")["revision"]
    ctl(c, "del", "cw/a")
    p = subprocess.Popen(
        [sys.executable, "-m", "raftkv.cli", "-w", "json", "watch", "cw/", "--prefix"]
        + ["--rev", str(rev)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RAFTKV_ENDPOINTS": ",".join(endpoints(c))},
    )
    try:
        assert p.stdout is not None
        lines = [json.loads(p.stdout.readline()) for _ in range(2)]
    finally:
        p.kill()
        p.wait()
    assert [(e["type"], e["kv"]["key"]) for e in lines] == [("PUT", "cw/a"), ("DELETE", "cw/a")]


def test_lock_runs_command_with_token(cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "token"
    r = ctl(cluster, "lock", "job", "--", "sh", "-c", f'echo "$RAFTKV_LOCK_TOKEN" > {out}; exit 7')
    assert r.returncode == 7, r.stderr
    assert int(out.read_text()) > 0
    assert ok_json(cluster, "get", "locks/job/", "--prefix")["count"] == 0


def test_elect_member_endpoint_snapshot(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    env = {**os.environ, "RAFTKV_ENDPOINTS": ",".join(endpoints(c))}
    p = subprocess.Popen(
        [sys.executable, "-m", "raftkv.cli", "elect", "boss", "alice", "--ttl", "3"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert p.stdout is not None
        assert p.stdout.readline().startswith("elections/boss/")
        assert p.stdout.readline().strip() == "alice"
        assert ctl(c, "elect", "boss").stdout.splitlines()[1] == "alice"
    finally:
        p.terminate()
        p.wait(10)
    deadline = time.monotonic() + 10
    while ctl(c, "elect", "boss").returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.2)  # resigned on SIGTERM: no leader left
    assert ctl(c, "elect", "boss").returncode == 1
    members = ok_json(c, "member", "list")["members"]
    assert sorted(m["name"] for m in members) == ["n1", "n2", "n3"]
    table = ctl(c, "endpoint", "status").stdout
    assert "IS LEADER" in table and table.count("true") == 1
    health = ok_json(c, "endpoint", "health")
    assert all(h["health"] for h in health) and len(health) == 3
    snap = tmp_path / "snap.db"
    r = ctl(c, "snapshot", "save", str(snap))
    assert r.returncode == 0, r.stderr
    assert snap.stat().st_size > 0 and "Snapshot saved" in r.stdout
