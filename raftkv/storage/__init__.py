"""Durable storage on LMDB: the Raft log store and the MVCC state machine.

One LMDB environment per node (`open_env`) holds both:

* `LogStore` — the Raft log, hard state and snapshot metadata, read by the core
  through the `LogStorage` protocol and written one Ready at a time by `save()`;
* `MvccStore` — etcd v3 key-value semantics (revisions, history, txns, leases,
  compaction, quota, dedup), applied one committed batch at a time by `apply()`.

Commands proposed through Raft live in `commands`, what the state machine answers in
`results`, and its errors (with etcd's exact messages) in `errors`.
"""

from raftkv.storage.env import open_env
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore

__all__ = ["LogStore", "MvccStore", "open_env"]
