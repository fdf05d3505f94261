"""Exceptions of the raftkv client, one per outcome a caller must handle differently.

`Indeterminate` is deliberately a subclass of `Unavailable`: both say "the cluster did
not answer", but only `Indeterminate` says "and your write may still have applied", so
code that retries writes must catch it first and re-read before trying again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raftkv.client.models import KeyValue


class RaftkvError(Exception):
    """Base of every client error; `code` is the server's error code when it sent one."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class KeyNotFound(RaftkvError):
    """The key does not exist (at the requested revision)."""


class LeaseNotFound(RaftkvError):
    """The lease does not exist: it expired, was revoked, or never was granted."""


class CompareFailed(RaftkvError):
    """A compare-and-swap condition did not hold; `current` is the key as it is now."""

    def __init__(self, message: str, current: KeyValue | None, revision: int = 0) -> None:
        super().__init__(message, "compare_failed", 412)
        self.current = current
        self.revision = revision


class Compacted(RaftkvError):
    """The requested revision was compacted away; history starts at `compact_revision`."""

    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(
            message or f"required revision has been compacted (compacted to {compact_revision})",
            "compacted",
        )
        self.compact_revision = compact_revision


class Unavailable(RaftkvError):
    """No endpoint answered within the deadline (nothing was applied by this call)."""


class Indeterminate(Unavailable):
    """A write was sent but its outcome is unknown: it may or may not have applied."""


class LockLost(RaftkvError):
    """The lock's key is gone (lease expired or key deleted): the holder must stop."""
