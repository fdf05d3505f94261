"""Storage micro-benchmark: `python -m raftkv.storage.bench` (or `make bench-storage`).

Measures, on a durable (fsync on commit) environment in a temporary directory:

* the disk's fsync floor: commits of a single tiny write transaction;
* LogStore.save() with 100 entries of 256 bytes plus a hard state per call (one
  write transaction and so one fsync per call: group commit);
* MvccStore.apply() of 100 puts of 256-byte values per batch over a random key space,
  each command carrying a 16-byte request id as the node's proposals do.

Each store benchmark runs twice: durable, which is what a node gets and is bounded
by the disk's commit latency, and with sync off, which shows the CPU ceiling of the
Python and LMDB work per batch (what the durable figure approaches on a fast disk).
An LMDB commit with metasync makes two synchronous writes (data pages, then the meta
page); "commits/s" counts durable commits, the unit a Raft node waits for.

It also prints how the deterministic logical size the quota is checked against
compares with the pages LMDB really uses, which is how layout.REVISION_OVERHEAD was
calibrated.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from raftkv.raft.messages import Entry, HardState
from raftkv.storage.commands import Put
from raftkv.storage.env import GiB, MiB, open_env
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore

BATCH = 100
PAYLOAD = 256


def bench_fsync(root: Path, seconds: float) -> float:
    """Seconds per commit of a one-key write transaction."""
    env = open_env(root / "fsync", map_size=64 * MiB)
    db = env.open_db(b"probe")
    n = 0
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < seconds:
            with env.begin(write=True) as txn:
                txn.put(b"k", n.to_bytes(8, "big"), db=db)
            n += 1
    finally:
        env.close()
    return (time.perf_counter() - start) / n


def bench_log(root: Path, seconds: float, sync: bool) -> tuple[float, float]:
    """(entries/s, commits/s) for LogStore.save with BATCH entries per call."""
    env = open_env(root / f"log-{sync}", map_size=4 * GiB, sync=sync)
    try:
        store = LogStore(env)
        data = os.urandom(PAYLOAD)
        txn_before = env.info()["last_txnid"]
        index = 0
        saves = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            entries = [Entry(1, index + i + 1, data=data) for i in range(BATCH)]
            index += BATCH
            store.save(HardState(1, 1, index), entries)
            saves += 1
        elapsed = time.perf_counter() - start
        commits = env.info()["last_txnid"] - txn_before
        assert commits == saves, "save() must be exactly one write transaction"
    finally:
        env.close()
    return index / elapsed, commits / elapsed


def bench_apply(root: Path, seconds: float, keyspace: int, sync: bool) -> tuple[float, str]:
    """Applied puts/s for MvccStore.apply with BATCH puts per call, and a size report."""
    env = open_env(root / f"mvcc-{sync}", map_size=8 * GiB, sync=sync)
    store = MvccStore(env)
    rng = random.Random(42)
    value = os.urandom(PAYLOAD)
    index = 0
    elapsed = 0.0
    while elapsed < seconds:
        # Encoding is the proposer's cost, not the state machine's: only apply is timed.
        batch = []
        for _ in range(BATCH):
            index += 1
            key = b"bench/key/%08d" % rng.randrange(keyspace)
            batch.append((index, Put(key, value, request_id=rng.randbytes(16)).encode()))
        start = time.perf_counter()
        store.apply(batch)
        elapsed += time.perf_counter() - start
    assert store.current_revision() == index + 1, "every put must have been applied"
    sizes = (
        f"revision {store.current_revision():,}: logical size "
        f"{store.space_used() / MiB:.1f} MiB, LMDB pages in use "
        f"{store.db_size_in_use() / MiB:.1f} MiB, file {store.db_size() / MiB:.1f} MiB"
    )
    env.close()
    return index / elapsed, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each phase")
    parser.add_argument("--keyspace", type=int, default=100_000, help="distinct keys for puts")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the envs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        fsync = bench_fsync(root, min(args.seconds, 1.0))
        print(f"durable commit of one key (disk floor): {fsync * 1e3:.3f} ms")
        for sync, label in ((True, "durable"), (False, "sync off, CPU ceiling")):
            entries, commits = bench_log(root, args.seconds, sync)
            print(
                f"LogStore.save, {BATCH} x {PAYLOAD} B entries [{label}]: "
                f"{entries:,.0f} entries/s, {commits:,.0f} commits/s (one per save)"
            )
            puts, sizes = bench_apply(root, args.seconds, args.keyspace, sync)
            print(f"MvccStore.apply, {BATCH} puts/batch [{label}]: {puts:,.0f} puts/s")
            print(f"  {sizes}")


if __name__ == "__main__":
    main()
