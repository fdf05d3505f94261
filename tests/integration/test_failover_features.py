"""Watches and leases across a leader failover, the OpenAPI document, the dev cluster."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

from aiohttp import web

from raftkv.server import v1
from raftkv.server.http import StreamGate
from raftkv.server.v1 import openapi
from tests.integration.cluster import Cluster


def _watch(c: Cluster, name: str, start: int, seen: list[tuple[int, str]], until: float) -> None:
    """Append (revision, key) of every PUT event until the stream breaks or `until`."""
    conn = http.client.HTTPConnection("127.0.0.1", c.members[name].client_port, timeout=1)
    q = f"?prefix&start_revision={start}" if start else "?prefix"
    try:
        conn.request("GET", f"/v1/watch/w/{q}")
        r = conn.getresponse()
        assert r.status == 200
        while time.monotonic() < until:
            try:
                line = r.readline()
            except TimeoutError:
                continue
            if not line:
                return
            msg = json.loads(line)
            for ev in msg.get("events", []):
                seen.append((msg["revision"], ev["kv"]["key"]))
    except (OSError, http.client.HTTPException):
        return
    finally:
        conn.close()


def test_watch_resumes_on_another_node_after_leader_crash(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            names = c.running()
            key = f"w/{i:05d}"
            r = c.try_req(random.choice(names), "PUT", f"/v1/kv/{key}", body="v", timeout=5)
            if r is not None and r.status == 200:
                acked.append(key)
            i += 1

    seen: list[tuple[int, str]] = []
    st0 = c.status(leader)
    assert st0 is not None
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        # From the revision before the first write, so no acknowledged write precedes it.
        start = st0["revision"] + 1
        watcher = threading.Thread(
            target=_watch, args=(c, leader, start, seen, time.monotonic() + 60), daemon=True
        )
        watcher.start()
        while len(seen) < 20:
            time.sleep(0.05)
        c.kill(leader)  # the watched node dies: the stream breaks
        watcher.join(10)
        assert not watcher.is_alive()
        last = seen[-1][0]
        new_leader = c.wait_leader(30)
        other = next(n for n in c.running() if n != new_leader)
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(30)
    st = c.status(new_leader)
    assert st is not None
    c.wait_applied([other], st["commit"])
    _watch(c, other, last + 1, seen, time.monotonic() + 3)
    revs = [rev for rev, _ in seen]
    keys = [k for _, k in seen]
    assert revs == sorted(revs), "events arrive in revision order"
    assert len(keys) == len(set(keys)), "no event is delivered twice"
    missing = set(acked) - set(keys)
    assert not missing, f"acknowledged writes never seen by the watcher: {sorted(missing)[:5]}"
    assert len(acked) > 20


def test_lease_survives_leader_kill(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    r = c.req(leader, "POST", "/v1/lease/grant", body={"ttl": 5})
    assert r.status == 200, r.body
    lid, granted = r.json()["id"], time.monotonic()
    assert c.put(leader, "leased", "x", f"?lease={lid}").status == 200
    time.sleep(2.0)
    c.kill(leader)
    new_leader = c.wait_leader(30)
    # Past the moment the lease would expire had the new leader not restarted its clock.
    time.sleep(max(0.0, granted + 5.5 - time.monotonic()))
    r = c.get(new_leader, "leased")
    assert r.status == 200, "the lease expired early across the failover"
    ttl = c.req(new_leader, "GET", f"/v1/lease/{lid}").json()
    assert ttl["granted_ttl"] == 5 and 0 < ttl["ttl"] <= 5
    # ...and it still expires: a refreshed clock, not an immortal lease.
    deadline = time.monotonic() + 20
    while c.get(new_leader, "leased").status == 200:
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.25)


def test_openapi_lists_every_v1_route(cluster: Cluster) -> None:
    app = web.Application()  # routes only, never started
    v1.add_routes(app, mock.MagicMock(), StreamGate(1))
    registered = openapi.route_keys(app)
    assert ("POST", "/v1/members") in registered
    doc = cluster.req("n1", "GET", "/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert registered - documented == set(), "routes missing from /v1/openapi.json"
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], (method, path)
            for resp in op["responses"].values():
                for media in resp.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    if ref:
                        assert ref.rsplit("/", 1)[1] in schemas, ref
    add = doc["paths"]["/v1/members"]["post"]
    assert {"201", "409", "400"} <= set(add["responses"])
    assert "name" in schemas["MemberAddRequest"]["properties"]
    get_params = {p["name"] for p in doc["paths"]["/v1/kv/{key}"]["get"]["parameters"]}
    assert {"prefix", "revision", "serializable", "keys_only", "count_only"} <= get_params


def _free_bases(n: int) -> tuple[int, int]:
    """Base client/peer ports such that base + 10000*i is free for every node i."""
    for _ in range(200):
        bc, bp = random.randrange(10000, 15000), random.randrange(10000, 15000)
        ports = [b + 10000 * i for b in (bc, bp) for i in range(n)]
        if len(set(ports)) < len(ports):
            continue
        try:
            for p in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return bc, bp
    raise AssertionError("no free port layout")


def test_devcluster_five_nodes(tmp_path: Path) -> None:
    bc, bp = _free_bases(5)
    out = tmp_path / "devcluster.out"
    cmd = [sys.executable, "-m", "raftkv.devcluster", "--nodes", "5"]
    cmd += ["--client-port", str(bc), "--peer-port", str(bp), "--data-dir", str(tmp_path / "d")]
    with open(out, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops the cluster" not in out.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()[-3000:]
            time.sleep(0.2)
        text = out.read_text(errors="replace")
        endpoints = [
            ln for ln in text.splitlines() if ln.strip().startswith("n") and "client" in ln
        ]
        assert len(endpoints) == 5, text[-3000:]
        assert "5 nodes" in text
        conn = http.client.HTTPConnection("127.0.0.1", bc + 40000, timeout=10)
        conn.request("PUT", "/v1/kv/dev", body=b"five")
        assert conn.getresponse().status == 200
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", bc, timeout=10)
        conn.request("GET", "/v1/kv/dev?raw")
        assert conn.getresponse().read() == b"five"
        conn.close()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0
