"""Opening an LMDB environment with the settings durability depends on.

A node keeps two environments in its data directory (see datadir.py): the Raft log and
the MVCC state machine, each with its own map, so neither can starve the other. The
helpers here open either with sync on, metasync on and no writemap, and refuse a file
that is shorter than its own meta page says (a truncated copy would SIGBUS the process
at the first read of a missing page).
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb

GiB = 1 << 30
MiB = 1 << 20

# Virtual address space reserved for the map. LMDB only grows the file as pages are
# used, so a generous map costs nothing on disk; it must stay comfortably above the
# MVCC quota (2 GiB by default) so the NOSPACE error fires long before MapFullError.
DEFAULT_MAP_SIZE = 8 * GiB

# Named databases, with spare slots so a future schema can add one without every
# deployment having to reopen with new flags.
DEFAULT_MAX_DBS = 32


class TruncatedError(Exception):
    """The data file is shorter than the pages its meta page says are in use."""


def open_env(
    path: str | os.PathLike[str],
    map_size: int = DEFAULT_MAP_SIZE,
    *,
    max_dbs: int = DEFAULT_MAX_DBS,
    readonly: bool = False,
    max_readers: int = 126,
    sync: bool = True,
    metasync: bool | None = None,
) -> lmdb.Environment:
    """Open (creating if needed) the node's LMDB environment at directory `path`.

    `sync=True` and `metasync=True` make every committed write transaction durable
    before `commit()` returns, which is what the Raft Ready contract needs (a vote or
    an append ack may only leave the node after its state is on disk). `writemap` stays
    off: with it a stray write through a bad pointer could corrupt the map, and it
    buys little on Linux. `metasync=False` (the state machine's environment) halves
    the syncs of a commit and keeps LMDB's integrity, but a crash of the machine may
    undo the LAST commit: right for state that the log can replay (see mvcc.py).
    `readahead=False` because access is random (B-tree pages),
    and readahead would evict useful pages once the data set outgrows RAM.
    """
    p = Path(path)
    if not readonly:
        p.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(
        str(p),
        map_size=map_size,
        subdir=True,
        readonly=readonly,
        metasync=sync if metasync is None else metasync and sync,
        sync=sync,
        map_async=False,
        writemap=False,
        readahead=False,
        max_dbs=max_dbs,
        max_readers=max_readers,
        lock=True,
        create=not readonly,
    )
    try:
        check_length(env)
    except TruncatedError:
        env.close()
        raise
    return env


def check_length(env: lmdb.Environment) -> None:
    """Refuse a data file shorter than the pages in use (read from the meta page only,
    before any data page is touched)."""
    data = Path(env.path()) / "data.mdb"
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        return
    need = env_size(env)
    if size < need:
        raise TruncatedError(
            f"{data} is {size} bytes but its meta page says {need} bytes are in use: "
            "the file was truncated or copied incompletely"
        )


def env_size(env: lmdb.Environment) -> int:
    """Bytes of the map used so far (the high-water mark of allocated pages).

    LMDB never shrinks its file and reuses freed pages, so this is what the file
    occupies on disk and how close the environment is to MapFullError.
    """
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]
