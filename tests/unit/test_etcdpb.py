"""raftkv/etcdpb: the generated modules match proto/ and keep etcd's wire contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor

from raftkv.etcdpb import kv_pb2, rpc_pb2, v3election_pb2, v3lock_pb2

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "raftkv" / "etcdpb"


def test_generated_modules_match_a_fresh_make_proto(tmp_path: Path) -> None:
    protos = sorted(p.relative_to(ROOT) for p in (ROOT / "proto/raftkv/etcdpb").glob("*.proto"))
    assert [p.name for p in protos] == [
        "auth.proto",
        "kv.proto",
        "rpc.proto",
        "v3election.proto",
        "v3lock.proto",
    ]
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iproto"]
        + [f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
        + [str(p) for p in protos],
        cwd=ROOT,
        check=True,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "raftkv" / "etcdpb").iterdir()}
    committed = {
        p.name: p.read_bytes() for p in GENERATED.iterdir() if p.name.endswith((".py", ".pyi"))
    }
    committed.pop("__init__.py")
    assert sorted(fresh) == sorted(committed), "run `make proto` and commit raftkv/etcdpb"
    for name, data in fresh.items():
        assert committed[name] == data, f"{name} is stale or hand-edited: run `make proto`"


def _numbers(message) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_wire_facts_from_etcds_definitions() -> None:
    services = rpc_pb2.DESCRIPTOR.services_by_name
    assert services["KV"].methods_by_name["Range"].full_name == "etcdserverpb.KV.Range"
    assert sorted(services) == ["Auth", "Cluster", "KV", "Lease", "Maintenance", "Watch"]

    assert rpc_pb2.ResponseHeader.DESCRIPTOR.full_name == "etcdserverpb.ResponseHeader"
    assert _numbers(rpc_pb2.ResponseHeader) == {
        "cluster_id": 1,
        "member_id": 2,
        "revision": 3,
        "raft_term": 4,
    }
    assert _numbers(rpc_pb2.RangeRequest) == {
        "key": 1,
        "range_end": 2,
        "limit": 3,
        "revision": 4,
        "sort_order": 5,
        "sort_target": 6,
        "serializable": 7,
        "keys_only": 8,
        "count_only": 9,
        "min_mod_revision": 10,
        "max_mod_revision": 11,
        "min_create_revision": 12,
        "max_create_revision": 13,
    }
    assert kv_pb2.KeyValue.DESCRIPTOR.full_name == "mvccpb.KeyValue"
    assert _numbers(kv_pb2.KeyValue) == {
        "key": 1,
        "create_revision": 2,
        "mod_revision": 3,
        "version": 4,
        "value": 5,
        "lease": 6,
    }

    union = rpc_pb2.WatchRequest.DESCRIPTOR.oneofs_by_name["request_union"]
    assert {f.name: f.number for f in union.fields} == {
        "create_request": 1,
        "cancel_request": 2,
        "progress_request": 3,
    }
    watch_create = _numbers(rpc_pb2.WatchCreateRequest)
    assert (watch_create["prev_kv"], watch_create["watch_id"], watch_create["fragment"]) == (
        6,
        7,
        8,
    )
    assert _numbers(rpc_pb2.WatchResponse)["events"] == 11
    assert _numbers(rpc_pb2.Compare)["range_end"] == 64
    assert _numbers(rpc_pb2.StatusResponse)["isLearner"] == 10
    assert _numbers(rpc_pb2.Member)["isLearner"] == 5
    key = rpc_pb2.AuthRoleRevokePermissionRequest.DESCRIPTOR.fields_by_name["key"]
    assert key.type == FieldDescriptor.TYPE_BYTES

    methods = {
        m.full_name: m
        for d in (rpc_pb2.DESCRIPTOR, v3lock_pb2.DESCRIPTOR, v3election_pb2.DESCRIPTOR)
        for s in d.services_by_name.values()
        for m in s.methods
    }
    streams = {
        name: (m.client_streaming, m.server_streaming)
        for name, m in methods.items()
        if m.client_streaming or m.server_streaming
    }
    assert streams == {
        "etcdserverpb.Watch.Watch": (True, True),
        "etcdserverpb.Lease.LeaseKeepAlive": (True, True),
        "etcdserverpb.Maintenance.Snapshot": (False, True),
        "v3electionpb.Election.Observe": (False, True),
    }
    assert "v3lockpb.Lock.Lock" in methods and "v3lockpb.Lock.Unlock" in methods


def test_bytes_on_the_wire() -> None:
    assert rpc_pb2.RangeRequest(key=b"a", limit=5).SerializeToString() == b"\n\x01a\x18\x05"
    header = rpc_pb2.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4)
    assert header.SerializeToString() == b"\x08\x01\x10\x02\x18\x03\x20\x04"
