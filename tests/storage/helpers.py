"""Small helpers for driving an MvccStore the way the node will: raft index by index."""

from __future__ import annotations

from raftkv.storage.commands import Command
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import ApplyResult


class Driver:
    """Feeds commands to a store with consecutive Raft indexes."""

    def __init__(self, store: MvccStore) -> None:
        self.store = store
        self.index = store.applied_index()

    def batch(self, *cmds: Command | bytes) -> list[ApplyResult]:
        entries = []
        for c in cmds:
            self.index += 1
            entries.append((self.index, c if isinstance(c, bytes) else c.encode()))
        return self.store.apply(entries)

    def one(self, cmd: Command | bytes) -> ApplyResult:
        return self.batch(cmd)[0]

    def ok(self, cmd: Command):  # type: ignore[no-untyped-def]
        """Apply one command that must succeed; return its response."""
        r = self.one(cmd)
        assert r.error is None, r.error
        return r.response
