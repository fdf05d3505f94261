"""A member's data directory: its layout, its format version, and opening it safely.

    <data-dir>/
      VERSION          {"format": 2, "written_by": "0.2.0"}: the on-disk format
      log/             LMDB environment: the Raft log, hard state, snapshot metadata
      state/           LMDB environment: the MVCC state machine (keys, leases, ...)
      members.json     the membership as first learned (bootstrap or join)
      snap-spool/      snapshots being received from the leader

The log and the state machine live in separate environments, each with its own map,
so a burst of big log entries cannot fill the space the data needs (or the reverse),
and the state machine can be defragmented on its own.

Opening refuses, with a message saying what to do: a data dir written by a newer
raftkv (unknown format), one in the old single-environment format, a file shorter
than its meta page says, and damaged data (the full checks of verify.py).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lmdb

from raftkv import __version__
from raftkv.storage.env import GiB, TruncatedError, open_env
from raftkv.storage.errors import RUNBOOK, CorruptionError, is_corruption
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import DEFAULT_QUOTA, MvccStore, map_size_for

FORMAT = 2
VERSION_FILE = "VERSION"
LOG_MAP_SIZE = 32 * GiB  # virtual: the log is compacted by size and count long before


class DataDirError(Exception):
    """The data dir cannot be used as it is; the message says why and what to do."""


EMPTY_ENV_MAX = 64 * 1024  # an environment that only ever held its empty databases
MIN_FILE = 2 * 4096  # an LMDB file holds at least its two meta pages


def _check_present(env_dir: Path) -> None:
    """An environment of an existing data dir must still have its file: LMDB would
    silently start an empty one over a missing or emptied file (losing the term, the
    vote and every entry)."""
    data = env_dir / "data.mdb"
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        raise DataDirError(f"{data} is missing. {RUNBOOK}") from None
    if size < MIN_FILE:
        raise DataDirError(f"{data} is {size} bytes: it was truncated. {RUNBOOK}")


@dataclass
class Stores:
    log: LogStore
    state: MvccStore

    def close(self) -> None:
        self.log.env.close()
        self.state.env.close()


class DataDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def log_path(self) -> Path:
        return self.path / "log"

    @property
    def state_path(self) -> Path:
        return self.path / "state"

    @property
    def spool(self) -> Path:
        return self.path / "snap-spool"

    def exists(self) -> bool:
        return (self.path / VERSION_FILE).exists()

    def check_format(self) -> None:
        """Refuse a layout this release cannot read (before anything is opened)."""
        vf = self.path / VERSION_FILE
        if not vf.exists():
            if (self.path / "db").exists():
                raise DataDirError(
                    f"{self.path} was written by raftkv 0.1 (format 1: one LMDB environment "
                    f"in db/); this release reads format {FORMAT} only. Remove the member, "
                    "wipe its data dir and add it back, or restore from a snapshot."
                )
            return
        try:
            meta = json.loads(vf.read_text())
            fmt = int(meta["format"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataDirError(f"{vf} is not a raftkv format file: {e}") from None
        if fmt > FORMAT:
            raise DataDirError(
                f"{self.path} was written by a newer raftkv ({meta.get('written_by', '?')}, "
                f"format {fmt}); this raftkv ({__version__}) reads format {FORMAT}: upgrade it"
            )
        if fmt < FORMAT:
            raise DataDirError(f"{self.path} has the old on-disk format {fmt}; expected {FORMAT}")

    def write_format(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        vf = self.path / VERSION_FILE
        tmp = vf.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": FORMAT, "written_by": __version__}) + "\n")
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, vf)

    def open(
        self,
        *,
        quota_bytes: int = DEFAULT_QUOTA,
        sync: bool = True,
        verify: bool = True,
        **mvcc_options: object,
    ) -> Stores:
        """Open (creating if new) both environments, checked; DataDirError on damage."""
        self.check_format()
        fresh = not self.exists()
        if fresh:
            # VERSION is written as soon as both environments exist, before anything is
            # persisted or acknowledged: environments without it are a first start
            # that crashed, never data, so start over.
            for leftover in (self.log_path, self.state_path):
                data = leftover / "data.mdb"
                if data.exists() and data.stat().st_size > EMPTY_ENV_MAX:
                    raise DataDirError(
                        f"{self.path} holds data but no {VERSION_FILE} file: refusing to "
                        "guess its format (restore the VERSION file, or wipe the data dir)"
                    )
                shutil.rmtree(leftover, ignore_errors=True)
        else:
            for env_dir in (self.log_path, self.state_path):
                _check_present(env_dir)
        try:
            log_env = open_env(self.log_path, LOG_MAP_SIZE, sync=sync)
        except (TruncatedError, lmdb.Error) as e:
            raise DataDirError(f"{self.log_path}: {e}. {RUNBOOK}") from None
        try:
            state_env = open_env(
                self.state_path, map_size_for(quota_bytes), sync=sync, metasync=False
            )
        except (TruncatedError, lmdb.Error) as e:
            log_env.close()
            raise DataDirError(f"{self.state_path}: {e}. {RUNBOOK}") from None
        try:
            stores = Stores(
                LogStore(log_env),
                MvccStore(state_env, quota_bytes=quota_bytes, **mvcc_options),  # type: ignore[arg-type]
            )
            if verify and not fresh:
                stores.log.verify()
                stores.state.verify()
        except Exception as e:
            log_env.close()
            state_env.close()
            if is_corruption(e) or isinstance(e, CorruptionError | RuntimeError):
                raise DataDirError(f"damaged data in {self.path}: {e}. {RUNBOOK}") from None
            raise
        if fresh:
            self.write_format()
        return stores
