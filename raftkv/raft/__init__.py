"""The pure Raft core: no asyncio, time, os, socket or lmdb. See core.py."""

from raftkv.raft.core import Config, ProposalDropped, Raft, Ready, Role, SoftState, bootstrap
from raftkv.raft.messages import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMeta,
)
from raftkv.raft.storage import LogStorage, MemoryStorage

__all__ = [
    "Config",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "LogStorage",
    "MemoryStorage",
    "Message",
    "MessageType",
    "ProposalDropped",
    "Raft",
    "ReadState",
    "Ready",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "bootstrap",
]
