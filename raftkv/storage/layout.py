"""On-disk layout of the MVCC state machine: named databases and record formats.

    mvcc_hist    be64(main) be64(sub) -> record     every change ever made (until compacted)
    mvcc_index   user key -> be64(main) be64(sub) flag   DUPSORT, one dup per change of the
                 key, sorted by revision; flag 1 marks a deletion (tombstone)
    lease        be64(id) -> be64(ttl) be64(remaining)
    lease_keys   be64(id) -> user key                DUPSORT, the keys attached to a lease
    dedup        be64(seq) -> len(1) client id + digest(16) + persisted outcome   FIFO
    alarm        be64(member id) be64(alarm type) -> b""   the active alarms (etcd's)
    mvcc_meta    b"state" -> counters (applied index, revision, ...), b"conf_state",
                 b"schema"

A history record is `flags(1) create_revision(8) version(8) lease(8) key_len(2)`, then
the key, then the value. The mod revision is the record's own key, so it is not
repeated. Integers are big-endian so LMDB's byte order is numeric order.

The dedup table is keyed by sequence number so inserts are appends: client ids are
random, and inserting 100 random keys per batch would dirty ~100 B-tree pages per
commit. The id -> seq lookup is a dict rebuilt from this table at startup.

`State.hist_digest` is an order-independent digest of every history record (the sum,
mod 2**128, of a hash of each record), kept up to date by every write and committed
with it: opening a store recomputes it by a full scan, so damaged data pages are found
before the member serves anything from them (see verify.py).

The schema version is written once; opening a store written by a different schema
fails loudly instead of misreading it.
"""

from __future__ import annotations

import hashlib
import struct
from typing import NamedTuple

import lmdb

HIST_DB = b"mvcc_hist"
INDEX_DB = b"mvcc_index"
LEASE_DB = b"lease"
LEASE_KEYS_DB = b"lease_keys"
DEDUP_DB = b"dedup"
ALARM_DB = b"alarm"
META_DB = b"mvcc_meta"

# Every state-machine database, in snapshot order: (name, dupsort, dupfixed).
SM_DBS: tuple[tuple[bytes, bool, bool], ...] = (
    (HIST_DB, False, False),
    (INDEX_DB, True, True),
    (LEASE_DB, False, False),
    (LEASE_KEYS_DB, True, False),
    (DEDUP_DB, False, False),
    (ALARM_DB, False, False),
    (META_DB, False, False),
)

SCHEMA_VERSION = 2
K_STATE = b"state"
K_CONF_STATE = b"conf_state"
K_SCHEMA = b"schema"

U64 = struct.Struct(">Q")
REV = struct.Struct(">QQ")  # main revision, sub revision
REC = struct.Struct(">BQQQH")  # flags, create revision, version, lease, key length
REC_SIZE = REC.size
LEASE_REC = struct.Struct(">QQ")  # granted ttl, remaining ttl at the last checkpoint
STATE_REC = struct.Struct(">QQQQQQ16s")
ALARM_KEY = struct.Struct(">QQ")
DIGEST_MOD = 1 << 128

FLAG_TOMBSTONE = 1
LIVE = b"\x00"
TOMBSTONE = b"\x01"
REF_SIZE = REV.size  # an index dup is REF_SIZE bytes of revision + 1 flag byte

# --- space accounting ------------------------------------------------------------------
# The quota is checked against a *logical* size that every replica computes identically
# from the commands it applied. LMDB's physical size depends on page reuse, readers that
# pin old pages and the Raft log sharing the file, so it differs between replicas; a
# NOSPACE decision based on it could make one replica apply a put another refused. The
# constants approximate LMDB's per-entry cost (node headers, index dup, page slack), so
# the logical size tracks the live data set closely; see the calibration in bench.py.
REVISION_OVERHEAD = 96  # per history record, on top of its bytes and its key again
LEASE_OVERHEAD = 64  # per lease
LEASE_KEY_OVERHEAD = 24  # per key attached to a lease, on top of the key bytes


def record_cost(record_len: int, key_len: int) -> int:
    """Logical bytes one history record (and its index dup) occupies."""
    return record_len + key_len + REVISION_OVERHEAD


def lease_key_cost(key_len: int) -> int:
    return key_len + LEASE_KEY_OVERHEAD


class State(NamedTuple):
    """The counters committed with every apply batch, read back as one record."""

    applied_index: int = 0
    revision: int = 1  # etcd's empty store is at revision 1; the first write makes 2
    compact_revision: int = 0  # 0 = never compacted
    space_used: int = 0  # logical bytes, compared against the quota
    dedup_head: int = 0  # oldest live dedup sequence number
    dedup_next: int = 0  # next dedup sequence number
    hist_digest: int = 0  # sum of record_digest() over the history, mod DIGEST_MOD

    def encode(self) -> bytes:
        return STATE_REC.pack(*self[:6], self.hist_digest.to_bytes(16, "big"))

    @classmethod
    def decode(cls, buf: bytes) -> State:
        *counters, digest = STATE_REC.unpack(buf)
        return cls(*counters, int.from_bytes(digest, "big"))


def record_digest(ref: bytes, rec: bytes) -> int:
    """One history record's share of State.hist_digest."""
    return int.from_bytes(hashlib.blake2b(ref + rec, digest_size=16).digest(), "big")


class Dbs:
    """Handles of every state-machine database in one environment."""

    __slots__ = ("hist", "index", "lease", "lease_keys", "dedup", "alarm", "meta")

    def __init__(self, env: lmdb.Environment) -> None:
        h = {name: env.open_db(name, dupsort=ds, dupfixed=df) for name, ds, df in SM_DBS}
        self.hist = h[HIST_DB]
        self.index = h[INDEX_DB]
        self.lease = h[LEASE_DB]
        self.lease_keys = h[LEASE_KEYS_DB]
        self.dedup = h[DEDUP_DB]
        self.alarm = h[ALARM_DB]
        self.meta = h[META_DB]

    def by_name(self) -> dict[bytes, lmdb._Database]:
        return {
            HIST_DB: self.hist,
            INDEX_DB: self.index,
            LEASE_DB: self.lease,
            LEASE_KEYS_DB: self.lease_keys,
            DEDUP_DB: self.dedup,
            ALARM_DB: self.alarm,
            META_DB: self.meta,
        }
