"""Damaged files are found before a member serves from them.

LMDB has no page checksums: the log carries a crc32 per entry, the state machine a
digest of every history record (State.hist_digest) that `verify()` recomputes, and a
data file shorter than its meta page says is refused before any page is touched.
These tests damage real files on disk the way a bad disk or a bad copy would.
"""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from raftkv.raft.messages import Entry, EntryType, HardState
from raftkv.storage import codec
from raftkv.storage.commands import Compact, DeleteRange, LeaseGrant, Put, Range
from raftkv.storage.datadir import DataDir, DataDirError
from raftkv.storage.env import MiB, TruncatedError, open_env
from raftkv.storage.errors import RUNBOOK, CorruptionError, is_corruption
from raftkv.storage.logstore import LOG_DB, LogStore
from raftkv.storage.mvcc import MvccStore
from tests.storage.helpers import Driver

PRECIOUS = b"precious value that must not rot %d "


def flip_everywhere(path: Path, needle: bytes) -> int:
    """Flip one bit in the middle of every copy of `needle` in the file (LMDB is
    copy-on-write: stale copies of a page may still sit in free pages, so damaging
    only the first match could miss the live one). Returns how many were damaged."""
    data = bytearray(path.read_bytes())
    n = 0
    i = data.find(needle)
    while i != -1:
        data[i + len(needle) // 2] ^= 0x01
        n += 1
        i = data.find(needle, i + len(needle))
    path.write_bytes(bytes(data))
    return n


def write_store(path: Path) -> dict[str, object]:
    """A store with history, deletions, leases and a compaction; closed on return."""
    env = open_env(path, map_size=64 * MiB)
    try:
        store = MvccStore(env, quota_bytes=16 * MiB)
        d = Driver(store)
        d.ok(LeaseGrant(60, 5))
        for i in range(200):
            d.ok(Put(b"key/%03d" % (i % 50), b"filler %d" % i * (1 + i % 7), lease=5 * (i % 2)))
        d.ok(Put(b"precious", PRECIOUS % 1 * 2))  # a small value: lives in a leaf page
        d.ok(Put(b"big", PRECIOUS % 2 * 200))  # a large one: an overflow page of its own
        d.ok(DeleteRange(b"key/01", b"key/02"))
        d.ok(Compact(150))
        assert store.verify() > 0
        return store.state_digest()
    finally:
        env.close()


def reopen_and_verify(path: Path) -> None:
    env = open_env(path, map_size=64 * MiB)
    try:
        MvccStore(env, quota_bytes=16 * MiB).verify()
    finally:
        env.close()


def test_an_intact_store_verifies_after_reopening(tmp_path: Path) -> None:
    digest = write_store(tmp_path)
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        store = MvccStore(env, quota_bytes=16 * MiB)
        assert store.verify() > 200
        assert store.state_digest() == digest
    finally:
        env.close()


@pytest.mark.parametrize("needle", [PRECIOUS % 1 * 2, PRECIOUS % 2 * 200])
def test_a_flipped_byte_in_a_value_is_found(tmp_path: Path, needle: bytes) -> None:
    write_store(tmp_path)
    assert flip_everywhere(tmp_path / "data.mdb", needle) >= 1
    with pytest.raises(Exception) as e:  # noqa: B017 - either kind is fine, see below
        reopen_and_verify(tmp_path)
    # The digest does not match (or LMDB itself noticed): both stop the member.
    assert is_corruption(e.value), e.value
    if isinstance(e.value, CorruptionError):
        assert "digest" in str(e.value)


def test_the_history_digest_is_kept_by_every_write(tmp_path: Path) -> None:
    """Not a scan at open but a running sum: puts, deletes, compactions and refused
    commands all leave it equal to what a fresh scan computes."""
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        store = MvccStore(env, quota_bytes=16 * MiB)
        d = Driver(store)
        assert store.state().hist_digest == 0
        store.verify()
        d.batch(Put(b"a", b"1"), Put(b"b", b"2"), Put(b"a", b"3"), Put(b"b", b"", lease=404))
        first = store.state().hist_digest
        assert first != 0 and store.verify() > 0
        d.ok(DeleteRange(b"a"))
        assert store.state().hist_digest != first
        store.verify()
        d.ok(Compact(store.current_revision()))
        store.verify()
        # Compacting everything but b's last value leaves exactly that record's share.
        only_b = store.state().hist_digest
        assert only_b != 0
        assert [kv.key for kv in store.range(Range(b"\x00", b"\x00")).kvs] == [b"b"]
    finally:
        env.close()


def test_datadir_refuses_a_damaged_state_machine(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "member")
    stores = dd.open(quota_bytes=16 * MiB)
    try:
        Driver(stores.state).ok(Put(b"k", PRECIOUS % 3 * 4))
    finally:
        stores.close()
    assert flip_everywhere(dd.state_path / "data.mdb", PRECIOUS % 3 * 4) >= 1
    with pytest.raises(DataDirError) as e:
        dd.open(quota_bytes=16 * MiB)
    assert "damaged" in str(e.value) and RUNBOOK in str(e.value)
    # Opening without the check works, and the check can still be run later.
    stores = dd.open(quota_bytes=16 * MiB, verify=False)
    try:
        with pytest.raises(CorruptionError):
            stores.state.verify()
        assert stores.log.verify() == 0
    finally:
        stores.close()


# --- the log ----------------------------------------------------------------------------


def payload(i: int) -> bytes:
    return b"raft entry payload %05d " % i * 3


def test_log_entry_checksums() -> None:
    e = Entry(3, 42, EntryType.NORMAL, payload(42))
    buf = codec.encode_entry(e)
    assert codec.decode_entry(buf) == e and codec.decode_entry(buf, 42) == e
    with pytest.raises(CorruptionError):
        codec.decode_entry(buf, expect_index=43)  # found under another index's key
    damaged = bytearray(buf)
    damaged[-5] ^= 0x40
    with pytest.raises(CorruptionError):
        codec.decode_entry(bytes(damaged))
    with pytest.raises(CorruptionError):
        codec.decode_entry(buf[:10])  # a cut header
    bad_type = bytearray(buf)
    bad_type[16] = 200
    with pytest.raises(CorruptionError):
        codec.decode_entry(bytes(bad_type))
    assert codec.entry_term(buf) == 3


def test_a_damaged_log_entry_is_found(tmp_path: Path) -> None:
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        log = LogStore(env)
        log.save(HardState(3, 1, 40), [Entry(3, i, data=payload(i)) for i in range(1, 41)])
        assert log.verify() == 40
    finally:
        env.close()
    assert flip_everywhere(tmp_path / "data.mdb", payload(17)) >= 1
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        log = LogStore(env)  # opening reads only bounds and terms: it works
        with pytest.raises(CorruptionError):
            log.verify()
        with pytest.raises(CorruptionError):
            log.entries(10, 20)  # every read checks what it returns
        assert [e.index for e in log.entries(18, 41)] == list(range(18, 41))
        assert log.term(17) == 3  # the header is intact
    finally:
        env.close()


def test_a_hole_in_the_log_is_found(tmp_path: Path) -> None:
    """A hole far behind the tail (the open only checks the newest 1024 entries)."""
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        log = LogStore(env)
        log.save(HardState(1, 1, 1100), [Entry(1, i, data=b"x") for i in range(1, 1101)])
        log_db = env.open_db(LOG_DB)
        with env.begin(write=True) as txn:
            assert txn.delete(codec.index_key(10), db=log_db)
    finally:
        env.close()
    env = open_env(tmp_path, map_size=64 * MiB)
    try:
        with pytest.raises(CorruptionError, match="hole"):
            LogStore(env).verify()
    finally:
        env.close()


def test_datadir_refuses_a_damaged_log(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "member")
    stores = dd.open(quota_bytes=16 * MiB)
    try:
        stores.log.save(HardState(2, 1, 5), [Entry(2, i, data=payload(i)) for i in range(1, 6)])
    finally:
        stores.close()
    assert flip_everywhere(dd.log_path / "data.mdb", payload(3)) >= 1
    with pytest.raises(DataDirError, match="damaged"):
        dd.open(quota_bytes=16 * MiB)


# --- truncated files ----------------------------------------------------------------------


def test_open_env_refuses_a_truncated_data_file(tmp_path: Path) -> None:
    write_store(tmp_path)
    data = tmp_path / "data.mdb"
    full = data.read_bytes()
    for size in (len(full) - 4096, len(full) // 2, 2 * 4096 + 1):
        data.write_bytes(full[:size])
        with pytest.raises(TruncatedError, match="truncated"):
            open_env(tmp_path, map_size=64 * MiB)
    data.write_bytes(full)
    reopen_and_verify(tmp_path)  # the whole file is fine again


def test_a_file_shorter_than_its_meta_pages_is_refused(tmp_path: Path) -> None:
    write_store(tmp_path)
    data = tmp_path / "data.mdb"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(lmdb.Error) as e:
        open_env(tmp_path, map_size=64 * MiB)
    assert is_corruption(e.value)


def test_datadir_refuses_a_truncated_file_with_the_runbook(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "member")
    stores = dd.open(quota_bytes=16 * MiB)
    try:
        d = Driver(stores.state)
        for i in range(100):
            d.ok(Put(b"k%d" % i, b"v" * 500))
    finally:
        stores.close()
    data = dd.state_path / "data.mdb"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(DataDirError) as e:
        dd.open(quota_bytes=16 * MiB)
    assert "truncated" in str(e.value) and RUNBOOK in str(e.value)


@pytest.mark.parametrize("which", ["log", "state"])
def test_datadir_refuses_a_data_file_truncated_to_nothing(tmp_path: Path, which: str) -> None:
    dd = DataDir(tmp_path / "member")
    stores = dd.open(quota_bytes=16 * MiB)
    try:
        stores.log.save(HardState(5, 2, 3), [Entry(5, i, data=b"x") for i in range(1, 4)])
        Driver(stores.state).batch(Put(b"a", b"1"), Put(b"b", b"2"), Put(b"c", b"3"))
    finally:
        stores.close()
    (dd.path / which / "data.mdb").write_bytes(b"")
    with pytest.raises(DataDirError):
        dd.open(quota_bytes=16 * MiB).close()


def test_datadir_refuses_a_data_file_shorter_than_a_page(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "member")
    dd.open(quota_bytes=16 * MiB).close()
    (dd.state_path / "data.mdb").write_bytes(b"\x00" * 100)
    with pytest.raises(DataDirError):
        dd.open(quota_bytes=16 * MiB)
