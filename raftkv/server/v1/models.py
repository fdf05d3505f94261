"""Pydantic models of the native API's JSON bodies.

Member and leader-transfer requests are validated with them; the rest describe what
the handlers emit, so `GET /v1/openapi.json` documents the real shapes (the schemas
come from `model_json_schema()`, not from a hand-written copy that could drift).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    code: str = Field(description="machine-readable error code, e.g. key_not_found")
    message: str


class ErrorResponse(BaseModel):
    """Every error: `{"error": {...}}` plus optional context (e.g. `current` on a 412)."""

    model_config = ConfigDict(extra="allow")
    error: ErrorDetail


class KeyValue(_Model):
    key: str | None = Field(description="the key as UTF-8, null if it is not valid UTF-8")
    key_b64: str
    create_revision: int
    mod_revision: int
    version: int
    lease: int
    value: str | None = None
    value_b64: str | None = None


class KeyValueResponse(KeyValue):
    revision: int
    raft_term: int


class RangeResponse(_Model):
    kvs: list[KeyValue]
    count: int
    more: bool
    revision: int
    raft_term: int


class PutResponse(_Model):
    revision: int
    raft_term: int
    prev_kv: KeyValue | None = None


class DeleteResponse(_Model):
    deleted: int
    prev_kvs: list[KeyValue]
    revision: int
    raft_term: int


class CompareModel(_Model):
    key: str | None = None
    key_b64: str | None = None
    range_end: str | None = None
    target: Literal["VALUE", "VERSION", "CREATE", "MOD", "LEASE"]
    result: Literal["EQUAL", "NOT_EQUAL", "GREATER", "LESS", "=", "==", "!=", ">", "<"]
    value: str | None = None
    value_b64: str | None = None
    version: int | None = None
    create_revision: int | None = None
    mod_revision: int | None = None
    lease: int | None = None


class TxnRequest(_Model):
    compare: list[CompareModel] = []
    success: list[dict[str, Any]] = Field(
        default=[], description='operations: {"put": {...}}, {"range": {...}}, {"delete": {...}}'
    )
    failure: list[dict[str, Any]] = []


class TxnResponse(_Model):
    succeeded: bool
    responses: list[dict[str, Any]]
    revision: int
    raft_term: int


class CompactRequest(_Model):
    revision: int = Field(gt=0)
    physical: bool = Field(default=False, description="answer once the compaction applied")


class CompactResponse(_Model):
    revision: int
    compact_revision: int


class LeaseGrantRequest(_Model):
    ttl: int = Field(ge=0, description="seconds; raised to the cluster's minimum TTL")
    id: int = Field(default=0, ge=0, description="0 lets the cluster choose")


class LeaseGrantResponse(_Model):
    id: int
    ttl: int
    revision: int


class LeaseKeepAliveResponse(_Model):
    id: int
    ttl: int


class LeaseTtlResponse(_Model):
    id: int
    granted_ttl: int
    ttl: int
    keys: list[str | None] | None = None
    keys_b64: list[str] | None = None


class LeaseRef(_Model):
    id: int


class LeaseListResponse(_Model):
    leases: list[LeaseRef]


class RevisionResponse(_Model):
    revision: int


class WatchMessage(BaseModel):
    """One NDJSON line (or SSE `data:`) of a watch stream."""

    model_config = ConfigDict(extra="allow")
    created: bool | None = None
    progress: bool | None = None
    canceled: bool | None = None
    revision: int | None = None
    events: list[dict[str, Any]] | None = None


class StatusResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    id: int
    leader: int
    leader_name: str | None
    role: str
    term: int
    commit: int
    applied: int
    revision: int
    compact_revision: int
    db_size: int
    raft_first_index: int
    raft_last_index: int
    snapshot_index: int


class MemberStatusModel(BaseModel):
    """One member in /v1/cluster/status: identity always; the status fields of
    StatusResponse plus health and space when `reachable`, else `error`."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    peer_url: str
    client_url: str | None
    is_learner: bool
    reachable: bool
    healthy: bool | None = None
    health_reason: str | None = None
    error: str | None = None


class ClusterStatusResponse(BaseModel):
    members: list[MemberStatusModel]
    revision: int


class MemberModel(_Model):
    id: int
    name: str
    peer_url: str
    client_url: str | None
    is_leader: bool
    is_learner: bool


class MemberListResponse(_Model):
    members: list[MemberModel]


class MemberAddRequest(_Model):
    name: str = Field(min_length=1)
    peer_url: str = Field(description="http://host:port the members dial")
    client_url: str | None = None


class MemberAddResponse(_Model):
    member: MemberModel
    members: list[MemberModel]
    initial_cluster: str = Field(description="--initial-cluster for the new member")
    initial_cluster_state: Literal["existing"]


class MemberResponse(_Model):
    member: MemberModel


class MemberRemoveResponse(_Model):
    removed: MemberModel


class LeaderTransferRequest(_Model):
    to: int = Field(gt=0, description="id of a voting member")


class LeaderTransferResponse(_Model):
    leader: int
