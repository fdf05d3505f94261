"""kill -9 a real writer process at random moments; reopen and check durability.

The child acknowledges each write only after the call returned (so after LMDB's
fsync). After the kill every acknowledged write must be there, and whatever is there
must be whole: a batch is either entirely present or entirely absent.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from raftkv.storage.commands import Range
from raftkv.storage.env import MiB, open_env
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore
from tests.storage.crash_worker import MAP_SIZE, log_payload, mvcc_batch

ROOT = Path(__file__).resolve().parents[2]
KILLS = 6


def run_and_kill(mode: str, path: Path, seed: int, rng: random.Random) -> list[str]:
    """Start the worker, let it write for a random while, SIGKILL it, return its acks."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.crash_worker", mode, str(path), str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until it is really writing
        assert first, proc.stderr.read() if proc.stderr else "worker died"
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # A line cut off by the kill was never fully acknowledged.
    lines = (first + rest).split("\n")
    return [ln for ln in lines[:-1] if ln]


@pytest.mark.timeout(120)
def test_log_store_survives_kill9(tmp_path: Path) -> None:
    rng = random.Random(1234)
    acked_max = 0
    for round_ in range(KILLS):
        acks = run_and_kill("log", tmp_path, round_, rng)
        assert acks, "worker acknowledged nothing"
        acked_max = max(acked_max, int(acks[-1]))
        env = open_env(tmp_path, map_size=MAP_SIZE)
        try:
            store = LogStore(env)
            assert store.verify() == store.last_index() - store.first_index() + 1  # checksums
            hs, _ = store.initial_state()
            last = store.last_index()
            # Entries and hard state of a save() are one transaction.
            assert hs.commit == last
            assert last >= acked_max
            first = store.first_index()
            entries = store.entries(first, last + 1)
            assert [e.index for e in entries] == list(range(first, last + 1))
            for e in entries:
                assert e.data == log_payload(e.index, e.term)
            terms = [e.term for e in entries]
            assert terms == sorted(terms)
        finally:
            env.close()


@pytest.mark.timeout(120)
def test_mvcc_apply_survives_kill9(tmp_path: Path) -> None:
    """After each kill the store must equal a reference replica that applied exactly
    the whole batches up to the recovered applied index, and that index must cover
    every acknowledged batch."""
    rng = random.Random(99)
    ref_env = open_env(tmp_path / "reference", map_size=MAP_SIZE, sync=False)
    reference = MvccStore(ref_env, quota_bytes=64 * MiB)
    ref_batch = 0
    acked_max = 0
    try:
        for round_ in range(KILLS):
            acks = run_and_kill("mvcc", tmp_path / "victim", round_, rng)
            assert acks, "worker acknowledged nothing"
            acked_max = max(acked_max, int(acks[-1]))
            env = open_env(tmp_path / "victim", map_size=MAP_SIZE)
            try:
                store = MvccStore(env, quota_bytes=64 * MiB)
                applied = store.applied_index()
                assert applied >= acked_max
                while reference.applied_index() < applied:
                    cmds = mvcc_batch(ref_batch, reference.current_revision())
                    first = reference.applied_index() + 1
                    reference.apply([(first + i, c.encode()) for i, c in enumerate(cmds)])
                    ref_batch += 1
                assert reference.applied_index() == applied, "recovered inside a batch"
                assert state_of(store) == state_of(reference)
                assert store.state_digest() == reference.state_digest()
                assert store.state() == reference.state()  # the history digest too
                store.verify()
            finally:
                env.close()
    finally:
        ref_env.close()


def state_of(store: MvccStore) -> tuple[object, ...]:
    every = (b"\x00", b"\x00")
    compact = store.compact_revision()
    return (
        store.current_revision(),
        compact,
        store.space_used(),
        store.range(Range(*every)),
        [store.lease_get(i) for i in store.lease_list()],
        store.events(max(compact, 1), *every, prev_kv=True),
        store.alarms(),
    )
