"""Child process for the crash tests: writes in a loop and acknowledges each commit.

Run as `python -m tests.storage.crash_worker {log|mvcc} DIR SEED`. After every write
call returns it prints one line to stdout and flushes; the parent SIGKILLs it at a
random moment and checks that every acknowledged write survived and that no write is
half there. The data written is a pure function of its position, so the parent can
verify contents without talking to the child.
"""

from __future__ import annotations

import random
import sys

from raftkv.raft.messages import Entry, HardState
from raftkv.storage.commands import (
    Alarm,
    AlarmType,
    Command,
    Compact,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRange,
    LeaseGrant,
    LeaseRevoke,
    Put,
    Txn,
    prefix_end,
)
from raftkv.storage.env import MiB, open_env
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore

MAP_SIZE = 256 * MiB


def log_payload(index: int, term: int) -> bytes:
    return index.to_bytes(8, "big") + term.to_bytes(8, "big") * (1 + index % 5)


def run_log(path: str, seed: int) -> None:
    rng = random.Random(seed)
    env = open_env(path, map_size=MAP_SIZE)
    store = LogStore(env)
    term = store.hard_state().term + 1
    batches = 0
    while True:
        last = store.last_index()
        if batches % 7 == 3 and last - 4 >= store.first_index():
            start = last - 4  # overwrite a suffix with a newer term (leader change)
            term += 1
        else:
            start = last + 1
        count = rng.randint(5, 60)
        entries = [Entry(term, i, data=log_payload(i, term)) for i in range(start, start + count)]
        end = start + count - 1
        store.save(HardState(term, 1, end), entries)
        if batches % 11 == 10 and end > 200:
            store.compact(end - 100)
        batches += 1
        print(end, flush=True)


def mvcc_batch(b: int, revision: int) -> list[Command]:
    """The commands of batch number `b`: a pure function of b and of the revision the
    store reached (itself a function of the batches before b). The batch's length
    depends on b alone, so a restarted worker can find the batch boundaries."""
    n = 1 + (b * 7) % 40
    cmds: list[Command] = [
        Put(b"k/%03d" % ((b * 31 + j) % 200), b"%d:%d" % (b, j) * (1 + j % 9), lease=b % 4 + 1)
        if j % 3 == 0 and b % 4 == 1
        else Put(b"k/%03d" % ((b * 31 + j) % 200), b"%d:%d" % (b, j) * (1 + j % 9))
        for j in range(n)
    ]
    if b % 4 == 0:
        cmds.insert(0, LeaseGrant(60, b % 16 // 4 + 1))  # ids 1..4, regranted after revoke
    if b % 16 == 15:
        cmds.append(LeaseRevoke(b % 16 // 4 + 1))
    if b % 5 == 4:
        cmds.append(DeleteRange(b"k/%d" % (b % 10), prefix_end(b"k/%d" % (b % 10))))
    if b % 7 == 6:
        cmp = Compare(b"k/000", CompareTarget.VERSION, CompareResult.GREATER, 1)
        cmds.append(Txn((cmp,), (Put(b"t/a", b"%d" % b), Put(b"t/b", b"%d" % b)), ()))
    if b % 25 == 24:
        cmds.append(Compact(max(2, revision - 20)))  # may fail early on: still an entry
    if b % 3 == 2:  # client ids come back: first outcomes, duplicates and conflicts
        cmds.append(Put(b"c/%d" % (b % 5), b"%d" % (b // 15 % 2), client_id=b"cid-%d" % (b % 5)))
    if b % 13 == 12:  # the alarm table is state too
        cmds.append(Alarm(1, AlarmType.CORRUPT, b % 26 == 12))
    return cmds


def run_mvcc(path: str, seed: int) -> None:
    env = open_env(path, map_size=MAP_SIZE)
    store = MvccStore(env, quota_bytes=64 * MiB)
    b = 0
    index = 0
    # Find where the previous (killed) incarnation stopped: replay batch boundaries.
    while index < store.applied_index():
        index += len(mvcc_batch(b, 0))
        b += 1
    if index != store.applied_index():
        raise SystemExit(f"applied index {store.applied_index()} is inside batch {b - 1}")
    while True:
        cmds = mvcc_batch(b, store.current_revision())
        entries = [(index + 1 + i, c.encode()) for i, c in enumerate(cmds)]
        store.apply(entries)
        index += len(cmds)
        b += 1
        print(index, flush=True)


def main() -> None:
    mode, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "log":
        run_log(path, seed)
    elif mode == "mvcc":
        run_mvcc(path, seed)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
