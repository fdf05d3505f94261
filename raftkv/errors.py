"""Every error raftkv can report, as typed values with no transport knowledge.

The state machine, the node and the service layer raise these; each API face (the
native /v1 API, etcd's JSON gateway, gRPC) owns one table that turns a class into its
status code and wording. Nothing here knows HTTP statuses, gRPC codes or etcd's
message strings, and no code anywhere dispatches on an error's text.

Errors the state machine returns from `apply` are persisted in the de-duplication
table (a retried request gets its first outcome back), so each has a stable numeric
`code` and plain-data fields: `to_wire()` / `from_wire()` round-trip them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar


class RaftkvError(Exception):
    """Base of every typed error. Subclasses are dataclasses: their fields are data."""

    code: ClassVar[int] = 0
    summary: ClassVar[str] = "error"

    def describe(self) -> str:
        """A neutral one-line description (logs, tests); faces choose their own text."""
        fields = dataclasses.fields(self) if dataclasses.is_dataclass(self) else ()
        detail = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields)
        return f"{self.summary} ({detail})" if detail else self.summary

    def __str__(self) -> str:
        return self.describe()

    def to_wire(self) -> list[Any]:
        fields = dataclasses.fields(self) if dataclasses.is_dataclass(self) else ()
        return [self.code, [_plain(getattr(self, f.name)) for f in fields]]


def _plain(v: Any) -> Any:
    return int(v) if isinstance(v, IntEnum) else v


_REGISTRY: dict[int, type[RaftkvError]] = {}


def _register(cls: type[RaftkvError]) -> type[RaftkvError]:
    if cls.code in _REGISTRY:
        raise RuntimeError(f"error code {cls.code} used twice")
    _REGISTRY[cls.code] = cls
    return cls


def from_wire(raw: list[Any]) -> RaftkvError:
    """Rebuild an error from `to_wire()` output (the dedup table, peer RPC answers)."""
    code, args = raw
    cls = _REGISTRY.get(int(code))
    if cls is None:
        return InternalError(f"unknown error code {code}")
    try:
        values = []
        for f, a in zip(dataclasses.fields(cls), args, strict=True):
            enum = _ENUM_FIELDS.get((cls, f.name))
            values.append(enum(a) if enum is not None else a)
        return cls(*values)
    except (TypeError, ValueError):
        return InternalError(f"undecodable error {code}")


# --- request validation (InvalidArgument in etcd's vocabulary) -------------------------


class Invalid(IntEnum):
    """Why a request was refused before (or at) apply; faces map each to a message."""

    EMPTY_KEY = 1
    VALUE_PROVIDED = 2  # put with ignore_value and a value
    LEASE_PROVIDED = 3  # put with ignore_lease and a lease
    KEY_TOO_LARGE = 4
    MALFORMED_COMMAND = 5  # an entry that does not decode (never from a correct proposer)
    NEGATIVE_FIELD = 6
    LEASE_ID_RANGE = 7
    NEGATIVE_TTL = 8
    REQUEST_ID_TOO_LONG = 9
    TOO_MANY_OPS = 10  # --max-txn-ops
    EMPTY_TXN_OP = 11  # a RequestOp with no request in it
    KEY_NOT_PROVIDED = 12  # unlock/resign without a key
    BAD_MEMBER_URLS = 13
    BAD_FIELD = 14  # a field of the wrong type or out of range (face-level detail)
    NESTING_TOO_DEEP = 15
    FUTURE_COMPACTION = 16  # compact above the current revision (native API wording)


@_register
@dataclass
class InvalidArgument(RaftkvError):
    """The request is malformed or breaks a rule etcd checks before Raft."""

    code: ClassVar[int] = 1
    summary: ClassVar[str] = "invalid argument"
    reason: Invalid = Invalid.BAD_FIELD
    detail: str = ""

    def describe(self) -> str:
        return self.detail or self.reason.name.lower().replace("_", " ")


@_register
@dataclass
class RequestTooLarge(RaftkvError):
    """Larger than --max-request-bytes (etcd: "request is too large")."""

    code: ClassVar[int] = 2
    summary: ClassVar[str] = "request is too large"
    size: int = 0
    limit: int = 0


@_register
@dataclass
class DuplicateKey(RaftkvError):
    """A txn branch writes one key twice, or puts and deletes it."""

    code: ClassVar[int] = 3
    summary: ClassVar[str] = "duplicate key given in txn request"


@_register
@dataclass
class KeyNotFound(RaftkvError):
    """A put with ignore_value/ignore_lease on a key that does not exist."""

    code: ClassVar[int] = 4
    summary: ClassVar[str] = "key not found"


# --- revisions -------------------------------------------------------------------------


@_register
@dataclass
class Compacted(RaftkvError):
    """The revision asked for is below the compaction point."""

    code: ClassVar[int] = 10
    summary: ClassVar[str] = "required revision has been compacted"
    compact_revision: int = 0


@_register
@dataclass
class FutureRevision(RaftkvError):
    code: ClassVar[int] = 11
    summary: ClassVar[str] = "required revision is a future revision"
    current_revision: int = 0


# --- leases ----------------------------------------------------------------------------


@_register
@dataclass
class LeaseNotFound(RaftkvError):
    code: ClassVar[int] = 20
    summary: ClassVar[str] = "requested lease not found"
    lease_id: int = 0


@_register
@dataclass
class LeaseExists(RaftkvError):
    code: ClassVar[int] = 21
    summary: ClassVar[str] = "lease already exists"
    lease_id: int = 0


@_register
@dataclass
class LeaseTTLTooLarge(RaftkvError):
    code: ClassVar[int] = 22
    summary: ClassVar[str] = "too large lease TTL"
    ttl: int = 0


# --- space and budgets -----------------------------------------------------------------


@_register
@dataclass
class NoSpace(RaftkvError):
    """The backend quota is reached, or the NOSPACE alarm is raised: no growing writes."""

    code: ClassVar[int] = 30
    summary: ClassVar[str] = "database space exceeded"


@_register
@dataclass
class ResultTooLarge(RaftkvError):
    """A read (standalone or inside a txn) would return or scan more than its budget."""

    code: ClassVar[int] = 31
    summary: ClassVar[str] = "range result exceeds the limit"
    what: str = "bytes"  # "bytes" or "keys"
    limit: int = 0


@_register
@dataclass
class ResourceExhausted(RaftkvError):
    """A per-member cap (watchers, streams, pending proposals) is reached."""

    code: ClassVar[int] = 32
    summary: ClassVar[str] = "resource exhausted"
    resource: str = ""
    limit: int = 0


# --- exactly-once ----------------------------------------------------------------------


@_register
@dataclass
class RequestIdConflict(RaftkvError):
    """A request id reused for a request with different content."""

    code: ClassVar[int] = 40
    summary: ClassVar[str] = "request id was used for a different request"


# --- compare-and-swap (native API) -----------------------------------------------------


@dataclass
class CompareFailed(RaftkvError):
    """A guarded write's condition did not hold; `current` is the key as it is now."""

    code: ClassVar[int] = 50
    summary: ClassVar[str] = "the condition on the key did not hold"
    current: Any = None  # storage.results.KeyValue | None
    revision: int = 0


# --- availability ----------------------------------------------------------------------


class Why(IntEnum):
    NO_LEADER = 1  # never proposed: safe to retry anywhere
    TIMEOUT = 2  # proposed (or maybe): the outcome is unknown
    STOPPING = 3  # the member is shutting down (outcome unknown if it was proposed)
    NOT_APPLYING = 4  # the member stopped applying (fail-stop); never proposed
    LEADER_CHANGED = 5  # a leader-only call reached a member that no longer leads
    REMOVED = 6  # this member was removed from the cluster
    STORAGE = 7  # the member cannot write its log right now (disk full); never proposed


@_register
@dataclass
class Unavailable(RaftkvError):
    """Retry later (503). `proposed` says whether the request may have taken effect."""

    code: ClassVar[int] = 60
    summary: ClassVar[str] = "unavailable"
    why: Why = Why.NO_LEADER
    proposed: bool = False

    def describe(self) -> str:
        return self.why.name.lower().replace("_", " ")


# --- membership ------------------------------------------------------------------------


@_register
@dataclass
class MemberNotFound(RaftkvError):
    code: ClassVar[int] = 70
    summary: ClassVar[str] = "member not found"
    member_id: int = 0


@_register
@dataclass
class MemberExists(RaftkvError):
    """A member with this name or peer URL is already in the cluster."""

    code: ClassVar[int] = 71
    summary: ClassVar[str] = "peer URL or name already exists"
    name: str = ""
    peer_url: str = ""


@_register
@dataclass
class NotLearner(RaftkvError):
    code: ClassVar[int] = 72
    summary: ClassVar[str] = "can only promote a learner member"
    member_id: int = 0


@_register
@dataclass
class LearnerNotReady(RaftkvError):
    code: ClassVar[int] = 73
    summary: ClassVar[str] = "can only promote a learner member which is in sync with leader"
    member_id: int = 0
    match: int = 0
    last: int = 0


@_register
@dataclass
class BadTransferee(RaftkvError):
    code: ClassVar[int] = 74
    summary: ClassVar[str] = "bad leader transferee"
    member_id: int = 0


@_register
@dataclass
class ConfChangeRefused(RaftkvError):
    """Another membership change is still in flight, or the change would break quorum."""

    code: ClassVar[int] = 75
    summary: ClassVar[str] = "membership change refused"
    detail: str = ""

    def describe(self) -> str:
        return self.detail or self.summary


@_register
@dataclass
class Unsupported(RaftkvError):
    code: ClassVar[int] = 76
    summary: ClassVar[str] = "not supported"
    detail: str = ""

    def describe(self) -> str:
        return self.detail or self.summary


# --- recipes (v3election) ---------------------------------------------------------------


@_register
@dataclass
class ElectionNotLeader(RaftkvError):
    code: ClassVar[int] = 80
    summary: ClassVar[str] = "election: not leader"


@_register
@dataclass
class ElectionNoLeader(RaftkvError):
    code: ClassVar[int] = 81
    summary: ClassVar[str] = "election: no leader"


# --- internal --------------------------------------------------------------------------


@_register
@dataclass
class InternalError(RaftkvError):
    """A bug, caught: applying an entry raised. The result is the same on every member
    (the same code ran on the same state), so it is stored like any other outcome."""

    code: ClassVar[int] = 99
    summary: ClassVar[str] = "internal error"
    detail: str = ""


# Fields whose wire form is an int but whose type is an enum.
_ENUM_FIELDS: dict[tuple[type[RaftkvError], str], Any] = {
    (InvalidArgument, "reason"): Invalid,
    (Unavailable, "why"): Why,
}
