"""Local storage failures: what the disk did, never what a request did.

Requests are refused with the typed errors of `raftkv.errors`; these are about the
member's own files, and the node reacts to them itself: a full disk stops writes until
space is back, damaged data stops the member (fail-stop) with a recovery runbook.
"""

from __future__ import annotations

import errno
import os

import lmdb

RUNBOOK = (
    "This member's data cannot be trusted. Recover it: (1) remove it from the cluster "
    "(`raftkv member remove <id>` or DELETE /v1/members/<id> on a healthy member), "
    "(2) wipe its data dir, (3) add it back (POST /v1/members, then start it with "
    "--initial-cluster-state existing) so it catches up from the leader. If a majority "
    "is damaged, restore every member from the latest snapshot instead (see the README, "
    "'Recovering a member')."
)


class CorruptionError(Exception):
    """The data on disk is damaged: the member must stop (fail-stop), not limp on."""


class StorageFullError(Exception):
    """The disk (or an LMDB map) has no room for a write that must happen."""


# lmdb errors that mean the file itself is damaged or inconsistent.
_CORRUPT = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.InvalidError,
    lmdb.VersionMismatchError,
    lmdb.BadRslotError,
    lmdb.PanicError,
)


def is_corruption(e: BaseException) -> bool:
    return isinstance(e, (CorruptionError, *_CORRUPT))


_FULL_ERRNOS = (errno.ENOSPC, errno.EIO, errno.EDQUOT)


def is_full(e: BaseException) -> bool:
    """The disk is full (ENOSPC, or LMDB's EIO on a short write), or a map is."""
    if isinstance(e, StorageFullError | lmdb.MapFullError | lmdb.DiskError):
        return True
    if isinstance(e, OSError):
        return e.errno in _FULL_ERRNOS
    if isinstance(e, lmdb.Error):
        # py-lmdb's C binding raises the bare lmdb.Error for system errors and keeps no
        # code: its message is "<call>: <strerror(code)>", so the code is read from it.
        text = str(e)
        return any(text.endswith(": " + os.strerror(code)) for code in _FULL_ERRNOS)
    return False
