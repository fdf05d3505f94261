"""Lease records: ids, TTLs, attached keys.

Expiry is not decided here: time is only known to the leader, which proposes a
`LeaseRevoke` when a lease runs out (and `LeaseCheckpoint`s so a successor does not
restart every TTL from scratch). This module only stores what was granted and which
keys hang off each lease, and derives lease ids deterministically.
"""

from __future__ import annotations

from collections.abc import Callable

import lmdb

from raftkv.storage.layout import LEASE_REC, U64
from raftkv.storage.results import LeaseInfo

MAX_LEASE_TTL = 9_000_000_000  # etcd's MaxLeaseTTL, seconds
MAX_ID = (1 << 63) - 1
_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """A fixed bijective mixer: consecutive Raft indexes give scattered ids."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def derive_lease_id(raft_index: int, exists: Callable[[int], bool]) -> int:
    """The id a `LeaseGrant(id=0)` at `raft_index` gets: same on every replica.

    Mixed from the Raft index (unique per committed entry) into a positive int64, then
    probed upwards past ids that a client already chose explicitly.
    """
    candidate = (_splitmix64(raft_index) & MAX_ID) or 1
    while exists(candidate):
        candidate = (candidate + 1) & MAX_ID or 1
    return candidate


def lease_key(lease_id: int) -> bytes:
    return U64.pack(lease_id)


def encode_lease(ttl: int, remaining: int) -> bytes:
    return LEASE_REC.pack(ttl, remaining)


def decode_lease(buf: bytes) -> tuple[int, int]:
    ttl, remaining = LEASE_REC.unpack(buf)
    return ttl, remaining


def attached_keys(txn: lmdb.Transaction, keys_db: lmdb._Database, lease_id: int) -> list[bytes]:
    """Keys attached to the lease, in key order."""
    cur = txn.cursor(keys_db)
    if not cur.set_key(lease_key(lease_id)):
        return []
    return list(cur.iternext_dup())


def read_lease(
    txn: lmdb.Transaction,
    lease_db: lmdb._Database,
    keys_db: lmdb._Database,
    lease_id: int,
    with_keys: bool,
) -> LeaseInfo | None:
    raw = txn.get(lease_key(lease_id), db=lease_db)
    if raw is None:
        return None
    ttl, remaining = decode_lease(raw)
    keys = tuple(attached_keys(txn, keys_db, lease_id)) if with_keys else ()
    return LeaseInfo(lease_id, ttl, remaining, keys)


def all_leases(txn: lmdb.Transaction, lease_db: lmdb._Database) -> list[LeaseInfo]:
    out = []
    for k, v in txn.cursor(lease_db):
        ttl, remaining = decode_lease(v)
        out.append(LeaseInfo(U64.unpack(k)[0], ttl, remaining))
    return out
