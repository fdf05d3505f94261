"""Binary encodings of the Raft values the log store persists.

Entries are the hot path (every append, every AppendEntries read), so they get a fixed
struct header followed by the raw payload: no msgpack, no copies beyond the one slice.
The rarely written values (conf state, snapshot meta) use msgpack arrays with a leading
format version so a later release can read what an earlier one wrote. Never pickle:
these bytes outlive the process and cross version boundaries.
"""

from __future__ import annotations

import struct
import zlib

import msgpack

from raftkv.raft.messages import ConfState, Entry, EntryType, HardState, SnapshotMeta
from raftkv.storage.errors import CorruptionError

# term, index, type, crc32 of the payload. The index duplicates the LMDB key on purpose:
# decoding can check that the entry found under a key is the entry that key names; the
# checksum catches a damaged page before a damaged entry is applied or replicated.
ENTRY_HEADER = struct.Struct(">QQBI")
HARD_STATE = struct.Struct(">QQQ")
INDEX_KEY = struct.Struct(">Q")

_ENTRY_TYPES = tuple(EntryType)
_META_VERSION = 1


def index_key(index: int) -> bytes:
    """8-byte big-endian key: LMDB's byte order is then the numeric order."""
    return INDEX_KEY.pack(index)


def encode_entry(e: Entry) -> bytes:
    return ENTRY_HEADER.pack(e.term, e.index, e.type, zlib.crc32(e.data)) + e.data


def decode_entry(buf: bytes, expect_index: int | None = None) -> Entry:
    """The entry in `buf`; CorruptionError if its checksum or index does not match."""
    try:
        term, index, typ, crc = ENTRY_HEADER.unpack_from(buf)
        data = buf[ENTRY_HEADER.size :]
        kind = _ENTRY_TYPES[typ]
    except (struct.error, IndexError) as e:
        raise CorruptionError(f"raft log entry header is damaged: {e}") from None
    if zlib.crc32(data) != crc or (expect_index is not None and index != expect_index):
        raise CorruptionError(f"raft log entry {expect_index or index} is damaged")
    return Entry(term, index, kind, data)


def entry_term(buf: bytes) -> int:
    """The term of an encoded entry without building the Entry."""
    return ENTRY_HEADER.unpack_from(buf)[0]


def encode_hard_state(hs: HardState) -> bytes:
    return HARD_STATE.pack(hs.term, hs.vote, hs.commit)


def decode_hard_state(buf: bytes) -> HardState:
    return HardState(*HARD_STATE.unpack(buf))


def encode_conf_state(cs: ConfState) -> bytes:
    """Sorted member lists, so equal conf states encode to equal bytes."""
    return msgpack.packb([_META_VERSION, sorted(cs.voters), sorted(cs.learners)])


def decode_conf_state(buf: bytes) -> ConfState:
    version, voters, learners = msgpack.unpackb(buf)
    _check_version(version, "conf state")
    return ConfState(frozenset(voters), frozenset(learners))


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    cs = meta.conf_state
    return msgpack.packb(
        [_META_VERSION, meta.index, meta.term, sorted(cs.voters), sorted(cs.learners)]
    )


def decode_snapshot_meta(buf: bytes) -> SnapshotMeta:
    version, index, term, voters, learners = msgpack.unpackb(buf)
    _check_version(version, "snapshot meta")
    return SnapshotMeta(index, term, ConfState(frozenset(voters), frozenset(learners)))


def _check_version(version: int, what: str) -> None:
    if version != _META_VERSION:
        raise ValueError(f"unsupported {what} format version {version}")
