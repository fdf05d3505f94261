"""/metrics on a live 3-member cluster: Prometheus text format with HELP and TYPE on
every family, the histograms fed by real traffic on every face, per-peer gauges on the
leader, and every metric that deploy/'s alert rules and Grafana dashboard use."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from raftkv.etcdpb import rpc_pb2 as pb
from tests.grpc_helpers import EtcdClient
from tests.integration.cluster import Cluster, running

ROOT = Path(__file__).resolve().parents[2]
# Series Prometheus makes itself (not exported by a member).
PROMETHEUS_OWN = {"up"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAFTKV_PEER_PROBE_SECONDS", "0.3")  # read by the members at start
        with running(Cluster(tmp_path_factory.mktemp("metrics"), 3)) as c:
            yield c


def scrape(c: Cluster, name: str) -> dict[str, object]:
    r = c.req(name, "GET", "/metrics")
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f for f in text_string_to_metric_families(r.body.decode())}


def samples(families: dict[str, object], name: str) -> list[object]:
    return list(families[name].samples)  # type: ignore[attr-defined]


def value(families: dict[str, object], sample: str, **labels: str) -> float:
    for fam in families.values():
        for s in fam.samples:  # type: ignore[attr-defined]
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError((sample, labels))


def test_metrics_cover_every_face_disk_and_peer(cluster: Cluster) -> None:
    c = cluster
    leader = c.wait_leader()
    follower = c.followers(leader)[0]
    for i in range(20):
        assert c.put(leader, f"m/{i}", "v").status == 200
    assert c.get(follower, "m/1").status == 200
    assert c.req(leader, "POST", "/v3/kv/range", {"key": "bS8x"}).status == 200
    assert c.get(leader, "no-such-key").status == 404
    with EtcdClient(c.members[leader].client_port) as g:
        g.call("KV/Put", pb.PutRequest(key=b"m/g", value=b"1"))
        g.call("KV/Range", pb.RangeRequest(key=b"m/g"))
    # A watcher gets an event (the delivery-lag histogram).
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", c.members[leader].client_port, timeout=5)
    conn.request("GET", "/v1/watch/m/w")
    resp = conn.getresponse()
    resp.readline()  # created
    assert c.put(leader, "m/w", "x").status == 200
    assert b'"PUT"' in resp.readline()
    conn.close()
    time.sleep(1.0)  # a few peer probes

    fams = scrape(c, leader)
    for fam in fams.values():  # HELP and TYPE on every family
        assert fam.documentation, fam.name  # type: ignore[attr-defined]
        assert fam.type in {"counter", "gauge", "histogram", "info", "summary"}  # type: ignore[attr-defined]
    assert value(fams, "raftkv_server_is_leader") == 1
    assert value(fams, "raftkv_server_has_leader") == 1
    assert value(fams, "raftkv_server_proposals_applied_total") >= 20
    assert value(fams, "raftkv_disk_wal_fsync_duration_seconds_count") >= 20
    assert value(fams, "raftkv_disk_backend_commit_duration_seconds_count") >= 1
    assert value(fams, "raftkv_server_proposal_duration_seconds_count") >= 20
    assert value(fams, "raftkv_watch_event_delivery_lag_seconds_count") >= 1
    assert value(fams, "process_resident_memory_bytes") > 0  # etcdctl check reads it
    req = "raftkv_request_duration_seconds_count"
    assert value(fams, req, face="v1", operation="PUT /v1/kv/{key}", code="200") >= 20
    assert value(fams, req, face="v1", operation="GET /v1/kv/{key}", code="404") == 1
    assert value(fams, req, face="gateway", operation="POST /v3/kv/range", code="200") == 1
    assert value(fams, req, face="grpc", operation="KV/Put", code="OK") == 1
    assert value(fams, req, face="grpc", operation="KV/Range", code="OK") == 1
    # Per peer, on the leader: both followers, caught up, with a measured round trip.
    peers = {m for m in c.members if m != leader}
    lag = {s.labels["To"]: s.value for s in samples(fams, "raftkv_network_peer_match_lag")}
    assert set(lag) == peers and all(v <= 5 for v in lag.values()), lag
    rtt = {
        s.labels["To"]: s.value
        for s in samples(fams, "raftkv_network_peer_round_trip_time_seconds")
    }
    assert set(rtt) == peers and all(0 < v < 1 for v in rtt.values()), rtt
    # A follower exports no per-peer replication state, and says it does not lead.
    f = scrape(c, follower)
    assert value(f, "raftkv_server_is_leader") == 0
    assert samples(f, "raftkv_network_peer_match_lag") == []


def _metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:raftkv|process)_[a-z_]+)", expr))
    names |= {n for n in re.findall(r"\b([a-z_]+)\{", expr) if n in PROMETHEUS_OWN}
    return names


def test_deploy_alerts_and_dashboard_use_only_exported_metrics(cluster: Cluster) -> None:
    fams = scrape(cluster, cluster.wait_leader())
    exported = {s.name for fam in fams.values() for s in fam.samples}  # type: ignore[attr-defined]
    exported |= set(fams)  # family names (histograms' base names, counters without _total)
    rules = yaml.safe_load((ROOT / "deploy/prometheus/raftkv-alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    for need in ("RaftkvNoLeader", "RaftkvHighNumberOfLeaderChanges", "RaftkvHighFsyncDurations",
                 "RaftkvDatabaseQuotaNearlyFull", "RaftkvMemberDown"):  # fmt: skip
        assert need in names
    dash = json.loads((ROOT / "deploy/grafana/raftkv-dashboard.json").read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set().union(*(_metric_names(e) for e in exprs))
    missing = sorted(n for n in used if n not in exported and n not in PROMETHEUS_OWN)
    assert not missing, f"deploy/ uses metrics no member exports: {missing}"
    assert len(used) >= 20
