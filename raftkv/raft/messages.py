"""Immutable values exchanged between the Raft core and the world.

Everything here is a frozen, slotted dataclass so a message that has been handed to
the transport, or an entry handed to storage, can never be mutated behind the core's
back. Node IDs are positive ints; 0 means "nobody" (no vote, no known leader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

NONE = 0  # "no node": no vote cast, no leader known


class MessageType(IntEnum):
    # Local-only inputs (never sent over the wire).
    HUP = 0  # election timeout fired: start a (pre-)campaign
    PROPOSE = 1  # client proposal; followers forward it to the leader
    # Peer messages.
    APP = 2  # AppendEntries
    APP_RESP = 3
    VOTE = 4
    VOTE_RESP = 5
    PRE_VOTE = 6
    PRE_VOTE_RESP = 7
    SNAP = 8  # InstallSnapshot (the transport streams the payload in chunks)
    HEARTBEAT = 9
    HEARTBEAT_RESP = 10
    TRANSFER_LEADER = 11
    TIMEOUT_NOW = 12
    READ_INDEX = 13
    READ_INDEX_RESP = 14
    SNAP_STATUS = 15  # local: the transport reports a snapshot send outcome


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(IntEnum):
    ADD_NODE = 0  # add a voter, or promote an existing learner
    ADD_LEARNER = 1
    REMOVE_NODE = 2
    UPDATE_NODE = 3  # a member's attributes (name, URLs) change; the voter sets do not


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        """Approximate wire size, used for the per-message and in-flight byte caps."""
        return len(self.data) + 24


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before a node answers anyone: term, vote and commit."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(frozen=True, slots=True)
class ConfState:
    voters: frozenset[int] = frozenset()
    learners: frozenset[int] = frozenset()

    def all_nodes(self) -> frozenset[int]:
        return self.voters | self.learners


@dataclass(frozen=True, slots=True)
class ConfChange:
    type: ConfChangeType
    node_id: int
    context: bytes = b""  # opaque to the core: the runtime puts member URLs here

    def encode(self) -> bytes:
        return bytes([int(self.type)]) + self.node_id.to_bytes(8, "big") + self.context

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        if len(data) < 9:
            raise ValueError("conf change entry too short")
        return ConfChange(ConfChangeType(data[0]), int.from_bytes(data[1:9], "big"), data[9:])


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


@dataclass(frozen=True, slots=True)
class Message:
    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0  # APP: term of the entry at `index`; VOTE: candidate's last term
    index: int = 0  # APP: index preceding `entries`; VOTE: candidate's last index
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0  # follower's last index on rejection (fast backtracking)
    context: bytes = b""  # read-index request context, or b"transfer" on forced votes
    snapshot: Snapshot | None = None


@dataclass(frozen=True, slots=True)
class ReadState:
    """A read request is safe to serve once the applied index reaches `index`."""

    index: int
    context: bytes


def is_local(t: MessageType) -> bool:
    return t in (MessageType.HUP, MessageType.SNAP_STATUS)


def is_response(t: MessageType) -> bool:
    return t in (
        MessageType.APP_RESP,
        MessageType.VOTE_RESP,
        MessageType.PRE_VOTE_RESP,
        MessageType.HEARTBEAT_RESP,
        MessageType.READ_INDEX_RESP,
    )
