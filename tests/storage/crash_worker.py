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
from raftkv.storage.env import MiB, open_env
from raftkv.storage.logstore import LogStore

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


def main() -> None:
    mode, path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "log":
        run_log(path, seed)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
