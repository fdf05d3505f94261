"""The unary RPCs of etcd's v3 API: method path -> (request, response, handler).

Every handler is the JSON gateway's parse -> service -> encode function (see wire.py),
except KV's, which convert protobuf messages directly (kv.py) because they are the
hot path. v3lock and v3election wrap their errors as Unknown, as etcd does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.etcdpb import v3election_pb2 as epb
from raftkv.etcdpb import v3lock_pb2 as lpb
from raftkv.server.etcd import cluster, election, lease, lock, maintenance
from raftkv.server.etcd.gateway import Gateway
from raftkv.server.etcd.routes import UNARY as GATEWAY
from raftkv.server.grpc import kv

JsonRpc = Callable[[Gateway, dict[str, Any]], Awaitable[dict[str, Any]]]
PbRpc = Callable[[Gateway, Any], Awaitable[Message]]


@dataclass(frozen=True)
class Rpc:
    request: type[Message]
    response: type[Message]
    json: JsonRpc | None = None  # transcoded through the gateway's function
    direct: PbRpc | None = None  # or protobuf in, protobuf out
    wrapped: bool = False


def _auth(rpc: str, message: str) -> tuple[str, Rpc]:
    """Auth RPCs answer as etcd does with auth disabled, until auth lands."""
    req, resp = getattr(pb, f"{message}Request"), getattr(pb, f"{message}Response")
    return f"/etcdserverpb.Auth/{rpc}", Rpc(req, resp, GATEWAY["/auth/enable"])


_AUTH_RPCS = {
    "AuthEnable": "AuthEnable",
    "AuthDisable": "AuthDisable",
    "Authenticate": "Authenticate",
    **{
        rpc: f"Auth{rpc}"
        for rpc in (
            "UserAdd",
            "UserGet",
            "UserList",
            "UserDelete",
            "UserChangePassword",
            "UserGrantRole",
            "UserRevokeRole",
            "RoleAdd",
            "RoleGet",
            "RoleList",
            "RoleDelete",
            "RoleGrantPermission",
            "RoleRevokePermission",
        )
    },
}


async def _auth_status(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    """etcd 3.5's AuthStatus with auth disabled."""
    return {"header": gw.header(), "enabled": False}


UNARY: dict[str, Rpc] = {
    "/etcdserverpb.KV/Range": Rpc(pb.RangeRequest, pb.RangeResponse, direct=kv.range_),
    "/etcdserverpb.KV/Put": Rpc(pb.PutRequest, pb.PutResponse, direct=kv.put),
    "/etcdserverpb.KV/DeleteRange": Rpc(
        pb.DeleteRangeRequest, pb.DeleteRangeResponse, direct=kv.delete_range
    ),
    "/etcdserverpb.KV/Txn": Rpc(pb.TxnRequest, pb.TxnResponse, direct=kv.txn),
    "/etcdserverpb.KV/Compact": Rpc(
        pb.CompactionRequest, pb.CompactionResponse, GATEWAY["/kv/compaction"]
    ),
    "/etcdserverpb.Lease/LeaseGrant": Rpc(
        pb.LeaseGrantRequest, pb.LeaseGrantResponse, lease.lease_grant
    ),
    "/etcdserverpb.Lease/LeaseRevoke": Rpc(
        pb.LeaseRevokeRequest, pb.LeaseRevokeResponse, lease.lease_revoke
    ),
    "/etcdserverpb.Lease/LeaseTimeToLive": Rpc(
        pb.LeaseTimeToLiveRequest, pb.LeaseTimeToLiveResponse, lease.lease_timetolive
    ),
    "/etcdserverpb.Lease/LeaseLeases": Rpc(
        pb.LeaseLeasesRequest, pb.LeaseLeasesResponse, lease.lease_leases
    ),
    "/etcdserverpb.Cluster/MemberAdd": Rpc(
        pb.MemberAddRequest, pb.MemberAddResponse, cluster.member_add
    ),
    "/etcdserverpb.Cluster/MemberRemove": Rpc(
        pb.MemberRemoveRequest, pb.MemberRemoveResponse, cluster.member_remove
    ),
    "/etcdserverpb.Cluster/MemberUpdate": Rpc(
        pb.MemberUpdateRequest, pb.MemberUpdateResponse, cluster.member_update
    ),
    "/etcdserverpb.Cluster/MemberList": Rpc(
        pb.MemberListRequest, pb.MemberListResponse, cluster.member_list
    ),
    "/etcdserverpb.Cluster/MemberPromote": Rpc(
        pb.MemberPromoteRequest, pb.MemberPromoteResponse, cluster.member_promote
    ),
    "/etcdserverpb.Maintenance/Alarm": Rpc(pb.AlarmRequest, pb.AlarmResponse, maintenance.alarm),
    "/etcdserverpb.Maintenance/Status": Rpc(
        pb.StatusRequest, pb.StatusResponse, maintenance.status
    ),
    "/etcdserverpb.Maintenance/Defragment": Rpc(
        pb.DefragmentRequest, pb.DefragmentResponse, maintenance.defragment
    ),
    "/etcdserverpb.Maintenance/Hash": Rpc(pb.HashRequest, pb.HashResponse, maintenance.hash_),
    "/etcdserverpb.Maintenance/HashKV": Rpc(
        pb.HashKVRequest, pb.HashKVResponse, maintenance.hash_kv
    ),
    "/etcdserverpb.Maintenance/MoveLeader": Rpc(
        pb.MoveLeaderRequest, pb.MoveLeaderResponse, cluster.transfer_leadership
    ),
    "/v3lockpb.Lock/Lock": Rpc(lpb.LockRequest, lpb.LockResponse, lock.lock, wrapped=True),
    "/v3lockpb.Lock/Unlock": Rpc(lpb.UnlockRequest, lpb.UnlockResponse, lock.unlock),
    "/v3electionpb.Election/Campaign": Rpc(
        epb.CampaignRequest, epb.CampaignResponse, election.campaign, wrapped=True
    ),
    "/v3electionpb.Election/Proclaim": Rpc(
        epb.ProclaimRequest, epb.ProclaimResponse, election.proclaim, wrapped=True
    ),
    "/v3electionpb.Election/Leader": Rpc(epb.LeaderRequest, epb.LeaderResponse, election.leader),
    "/v3electionpb.Election/Resign": Rpc(
        epb.ResignRequest, epb.ResignResponse, election.resign, wrapped=True
    ),
    **dict(_auth(rpc, message) for rpc, message in _AUTH_RPCS.items()),
    "/etcdserverpb.Auth/AuthDisable": Rpc(
        pb.AuthDisableRequest, pb.AuthDisableResponse, GATEWAY["/auth/disable"]
    ),
    "/etcdserverpb.Auth/AuthStatus": Rpc(pb.AuthStatusRequest, pb.AuthStatusResponse, _auth_status),
}
