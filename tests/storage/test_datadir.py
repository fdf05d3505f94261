"""The data directory: two LMDB environments (log, state), a format file, safe opening."""

from __future__ import annotations

import json
from pathlib import Path

import lmdb
import pytest

from raftkv.raft.messages import Entry, HardState
from raftkv.storage.commands import Put, Range
from raftkv.storage.datadir import FORMAT, VERSION_FILE, DataDir, DataDirError
from raftkv.storage.env import MiB
from raftkv.storage.layout import HIST_DB, SM_DBS
from raftkv.storage.logstore import LOG_DB, RAFTMETA_DB
from tests.storage.helpers import Driver


def db_names(env: lmdb.Environment) -> set[bytes]:
    with env.begin() as txn:
        return {k for k, _ in txn.cursor()}


def test_fresh_data_dir_round_trip(tmp_path: Path) -> None:
    dd = DataDir(tmp_path / "m1")
    assert not dd.exists()
    stores = dd.open(quota_bytes=16 * MiB, dedup_capacity=10)
    try:
        assert dd.exists()
        assert json.loads((dd.path / VERSION_FILE).read_text())["format"] == FORMAT
        stores.log.save(HardState(4, 2, 3), [Entry(4, i, data=b"e%d" % i) for i in range(1, 4)])
        Driver(stores.state).batch(Put(b"a", b"1"), Put(b"b", b"2", client_id=b"cid"))
        # The log and the state machine are separate environments: neither holds the
        # other's databases.
        assert Path(stores.log.env.path()) == dd.log_path
        assert Path(stores.state.env.path()) == dd.state_path
        assert db_names(stores.log.env) == {LOG_DB, RAFTMETA_DB}
        assert db_names(stores.state.env) == {name for name, _, _ in SM_DBS}
        assert HIST_DB not in db_names(stores.log.env)
    finally:
        stores.close()
    again = dd.open(quota_bytes=16 * MiB, dedup_capacity=10)  # verified on the way in
    try:
        assert again.log.hard_state() == HardState(4, 2, 3)
        assert [e.data for e in again.log.entries(1, 4)] == [b"e1", b"e2", b"e3"]
        assert [kv.key for kv in again.state.range(Range(b"\x00", b"\x00")).kvs] == [b"a", b"b"]
        assert Driver(again.state).one(Put(b"b", b"2", client_id=b"cid")).duplicate
    finally:
        again.close()


def test_old_foreign_and_newer_layouts_are_refused(tmp_path: Path) -> None:
    old = DataDir(tmp_path / "old")
    (old.path / "db").mkdir(parents=True)
    with pytest.raises(DataDirError, match="format 1"):
        old.open()

    # Environments without VERSION are a first start that crashed before writing it
    # (nothing was ever persisted): started over. With real data in them: refused.
    crashed = DataDir(tmp_path / "crashed-first-start")
    crashed.state_path.mkdir(parents=True)
    (crashed.state_path / "data.mdb").write_bytes(b"\0" * 8192)
    crashed.open().close()
    assert crashed.exists()
    no_version = DataDir(tmp_path / "no-version")
    no_version.state_path.mkdir(parents=True)
    (no_version.state_path / "data.mdb").write_bytes(b"\0" * (1 << 20))
    with pytest.raises(DataDirError, match="no VERSION"):
        no_version.open()

    newer = DataDir(tmp_path / "newer")
    newer.path.mkdir()
    (newer.path / VERSION_FILE).write_text(json.dumps({"format": FORMAT + 1, "written_by": "9"}))
    with pytest.raises(DataDirError, match="newer raftkv"):
        newer.open()
    assert not newer.log_path.exists()  # refused before anything was created

    older = DataDir(tmp_path / "older")
    older.path.mkdir()
    (older.path / VERSION_FILE).write_text(json.dumps({"format": FORMAT - 1}))
    with pytest.raises(DataDirError, match="old on-disk format"):
        older.open()

    garbage = DataDir(tmp_path / "garbage")
    garbage.path.mkdir()
    (garbage.path / VERSION_FILE).write_text("not json")
    with pytest.raises(DataDirError, match="not a raftkv format file"):
        garbage.open()


def test_the_log_syncs_every_commit_and_the_state_skips_only_the_meta_sync(
    tmp_path: Path,
) -> None:
    """Durability contract: an append ack needs the log commit fully durable (data and
    meta page synced); the state machine may lose its LAST commit to a machine crash
    (the log replays it), which keeps LMDB's integrity, so its meta page is not synced.
    Reopening and defragmenting keep the flags; restore and snapshots sync explicitly."""
    dd = DataDir(tmp_path / "m1")
    stores = dd.open(quota_bytes=16 * MiB)
    try:
        log_flags, state_flags = stores.log.env.flags(), stores.state.env.flags()
        assert log_flags["sync"] and log_flags["metasync"]
        assert state_flags["sync"] and not state_flags["metasync"]
        Driver(stores.state).batch(Put(b"a", b"1"))
        stores.state.reopen()
        assert not stores.state.env.flags()["metasync"]
        stores.state.defragment()
        assert stores.state.env.flags()["sync"] and not stores.state.env.flags()["metasync"]
        stores.state.sync()  # explicit full sync: used before the log is compacted
    finally:
        stores.close()
