"""Reads from other threads while one thread writes: every read is a consistent view.

The node persists and applies off the event loop while the loop keeps reading (the
Raft core reads the log, HTTP handlers read the key space), so these are real usage.
"""

from __future__ import annotations

import threading
import time

import lmdb

from raftkv.raft.messages import Entry, HardState
from raftkv.raft.storage import CompactedError
from raftkv.storage.commands import Compact, Put, Range
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore
from tests.storage.helpers import Driver

DURATION = 0.6  # write for at least this long, and until the reader has read
HARD_LIMIT = 20.0


def run_reader(read, stop: threading.Event, errors: list[BaseException]) -> threading.Thread:  # type: ignore[no-untyped-def]
    def loop() -> None:
        try:
            while not stop.is_set():
                read()
        except BaseException as e:  # reported to the test thread
            errors.append(e)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def finished(start: float, reader_progress: int) -> bool:
    elapsed = time.monotonic() - start
    return (elapsed > DURATION and reader_progress > 0) or elapsed > HARD_LIMIT


def test_log_reads_during_appends_and_compactions(env: lmdb.Environment) -> None:
    store = LogStore(env)
    stop = threading.Event()
    errors: list[BaseException] = []
    reads = [0]

    def read() -> None:
        first, last = store.first_index(), store.last_index()
        try:
            ents = store.entries(first, last + 1)
            terms = [store.term(i) for i in range(max(first - 1, 0), last + 1)]
        except CompactedError:
            return  # lost a race with compaction, as MemoryStorage would
        assert [e.index for e in ents] == list(range(first, last + 1))
        assert all(e.data == e.index.to_bytes(8, "big") for e in ents)
        assert all(t == 1 for t in terms[1:])
        reads[0] += 1

    reader = run_reader(read, stop, errors)
    index = 0
    start = time.monotonic()
    while not errors and not finished(start, reads[0]):
        ents = [Entry(1, i, data=i.to_bytes(8, "big")) for i in range(index + 1, index + 51)]
        index += 50
        store.save(HardState(1, 1, index), ents)
        if index % 500 == 0:
            store.compact(index - 100)
    stop.set()
    reader.join(timeout=10)
    assert not errors, errors[0]
    assert reads[0] > 0


def test_kv_reads_see_whole_batches(store: MvccStore) -> None:
    d = Driver(store)
    stop = threading.Event()
    errors: list[BaseException] = []
    last_seen = [0]

    def read() -> None:
        resp = store.range(Range(b"pair/", b"pair0"))
        assert resp.revision >= last_seen[0]
        last_seen[0] = resp.revision
        values = {kv.value for kv in resp.kvs}
        assert len(values) <= 1, f"saw half a batch: {resp.kvs}"

    reader = run_reader(read, stop, errors)
    start = time.monotonic()
    n = 0
    while not errors and not finished(start, last_seen[0] > 1):
        n += 1
        d.batch(Put(b"pair/a", b"%d" % n), Put(b"pair/b", b"%d" % n))
        if n % 20 == 0:
            d.ok(Compact(store.current_revision() - 2))
    stop.set()
    reader.join(timeout=10)
    assert not errors, errors[0]
    assert last_seen[0] > 1
