"""The one LMDB environment a node keeps in its data directory.

The Raft log store and the MVCC state machine share a single environment so the node
has one file to fsync, one map to size and one place to look when a disk fills up. Both
sides open their named databases from the same handle; the helpers here make sure the
environment is opened with the settings durability depends on (sync on, metasync on,
no writemap) and with room for every named database either side uses.
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

# Named databases: 2 for the log store, 9 for the state machine, plus spare slots so a
# future schema can add one without every deployment having to reopen with new flags.
DEFAULT_MAX_DBS = 32


def open_env(
    path: str | os.PathLike[str],
    map_size: int = DEFAULT_MAP_SIZE,
    *,
    max_dbs: int = DEFAULT_MAX_DBS,
    readonly: bool = False,
    max_readers: int = 126,
    sync: bool = True,
) -> lmdb.Environment:
    """Open (creating if needed) the node's LMDB environment at directory `path`.

    `sync=True` and `metasync=True` make every committed write transaction durable
    before `commit()` returns, which is what the Raft Ready contract needs (a vote or
    an append ack may only leave the node after its state is on disk). `writemap` stays
    off: with it a stray write through a bad pointer could corrupt the map, and it
    buys little on Linux. `readahead=False` because access is random (B-tree pages),
    and readahead would evict useful pages once the data set outgrows RAM.
    """
    p = Path(path)
    if not readonly:
        p.mkdir(parents=True, exist_ok=True)
    return lmdb.open(
        str(p),
        map_size=map_size,
        subdir=True,
        readonly=readonly,
        metasync=sync,
        sync=sync,
        map_async=False,
        writemap=False,
        readahead=False,
        max_dbs=max_dbs,
        max_readers=max_readers,
        lock=True,
        create=not readonly,
    )


def env_size(env: lmdb.Environment) -> int:
    """Bytes of the map used so far (the high-water mark of allocated pages).

    LMDB never shrinks its file and reuses freed pages, so this is what the file
    occupies on disk and how close the environment is to MapFullError.
    """
    return (env.info()["last_pgno"] + 1) * env.stat()["psize"]
