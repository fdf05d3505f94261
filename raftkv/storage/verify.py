"""Checking a member's data before it serves anything from it.

LMDB has no page checksums, so damage is found two ways:

* the log: every entry carries a crc32 of its payload (codec.py), checked whenever an
  entry is read, and here for the whole log at open (the log is short: it is
  compacted behind every snapshot);
* the state machine: `State.hist_digest` is an order-independent digest of every
  history record, updated by each write in the same transaction. Opening recomputes it
  with a full scan: a flipped byte in any record, or a damaged B-tree page (which
  makes LMDB report MDB_CORRUPTED or MDB_PAGE_NOTFOUND during the scan), stops the
  member with the recovery runbook instead of letting it answer from bad pages.

The scan reads every page once: about a second per few hundred MB of state. Files
shorter than their meta page says were refused earlier (env.check_length), before any
page could be touched.
"""

from __future__ import annotations

import lmdb

from raftkv.storage import codec
from raftkv.storage.errors import CorruptionError, is_corruption
from raftkv.storage.layout import DIGEST_MOD, K_STATE, Dbs, State, record_digest


def verify_log(env: lmdb.Environment, log_db: lmdb._Database) -> int:
    """Decode every log entry (checksums, contiguous indexes); the number checked."""
    n = 0
    prev = None
    try:
        with env.begin() as txn:
            for key, value in txn.cursor(log_db):
                index = codec.INDEX_KEY.unpack(key)[0]
                codec.decode_entry(value, index)
                if prev is not None and index != prev + 1:
                    raise CorruptionError(f"raft log has a hole after index {prev}")
                prev = index
                n += 1
    except CorruptionError:
        raise
    except Exception as e:
        if is_corruption(e):
            raise CorruptionError(f"raft log is damaged: {e}") from e
        raise
    return n


def verify_state(env: lmdb.Environment, dbs: Dbs) -> int:
    """Scan every state-machine database and check the history digest; records read."""
    n = 0
    try:
        with env.begin() as txn:
            raw = txn.get(K_STATE, db=dbs.meta)
            state = State.decode(raw) if raw else State()
            digest = 0
            for ref, rec in txn.cursor(dbs.hist):
                digest = (digest + record_digest(ref, rec)) % DIGEST_MOD
                n += 1
            for db in (dbs.index, dbs.lease, dbs.lease_keys, dbs.dedup, dbs.alarm, dbs.meta):
                for _ in txn.cursor(db).iternext(keys=True, values=False):
                    n += 1
    except Exception as e:
        if is_corruption(e) or isinstance(e, ValueError):
            raise CorruptionError(f"state machine is damaged: {e}") from e
        raise
    if digest != state.hist_digest:
        raise CorruptionError(
            "state machine history does not match its digest (a data page is damaged)"
        )
    return n
