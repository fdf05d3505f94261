"""Status, hashes, alarms, defragmentation and snapshots of one member.

Alarms are replicated state (a Raft command): NOSPACE raised by any member refuses
growing writes everywhere until it is disarmed, and survives restarts. Defragment
rewrites this member's state machine file compactly, which is what gives back the
space a compaction freed (LMDB never shrinks a file by itself).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from raftkv import __version__
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.storage import commands as cmds
from raftkv.storage.results import AlarmResponse


@dataclass(frozen=True, slots=True)
class MemberStatus:
    version: str
    db_size: int
    db_size_in_use: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    alarms: list[tuple[int, int]]
    is_learner: bool
    quota_bytes: int
    space_used: int


class MaintenanceService(ServiceBase):
    def status(self, ctx: CallContext = ANONYMOUS) -> Result[MemberStatus]:
        n = self.node
        hs = n.raft.hard_state
        st = MemberStatus(
            __version__,
            n.mvcc.db_size(),
            n.mvcc.db_size_in_use(),
            n.leader,
            hs.commit,
            hs.term,
            n.mvcc.applied_index(),
            n.mvcc.alarms(),
            n.membership.is_learner(n.id),
            n.mvcc.quota_bytes,
            n.mvcc.space_used(),
        )
        return self.result(st)

    def node_status(self) -> dict[str, object]:
        """This member's Raft and storage status (the native `/v1/status`)."""
        return self.node.status()

    def health(self) -> tuple[bool, str]:
        """Whether this member is ready to serve, and why not."""
        node = self.node
        if node.fatal is not None:
            return False, "node stopped applying"
        if node.removed:
            return False, "removed from the cluster"
        if node.storage_trouble is not None:
            return False, "disk full: " + node.storage_trouble
        if node.leader == 0:
            return False, "no leader"
        if node.mvcc.applied_index() < node.raft.hard_state.commit:
            return False, "applying committed entries"
        me = node.membership.get(node.id)
        if me is None or me.client_url != node.cfg.client_url:
            return False, "publishing this member's client URL"
        return True, "ok"

    async def hash_kv(self, ctx: CallContext = ANONYMOUS) -> Result[int]:
        """crc32 over every live key-value at the current revision: the same on every
        replica that applied the same entries (what clients compare hashes for)."""
        await self.linearize(False)
        revision = self.node.mvcc.current_revision()
        h = await self.node.run_io(self._kv_hash)
        return self.result(h, revision)

    def compact_revision(self) -> int:
        return self.node.mvcc.compact_revision()

    def _kv_hash(self) -> int:
        r = self.node.mvcc.range(cmds.Range(b"\x00", b"\x00"))
        h = 0
        for kv in r.kvs:
            for part in (kv.key, kv.value):
                h = zlib.crc32(len(part).to_bytes(4, "big") + part, h)
            h = zlib.crc32(
                f"{kv.create_revision},{kv.mod_revision},{kv.version},{kv.lease}".encode(), h
            )
        return h

    def alarms(self, ctx: CallContext = ANONYMOUS) -> Result[list[tuple[int, int]]]:
        return self.result(self.node.mvcc.alarms())

    async def set_alarm(
        self, member_id: int, alarm: cmds.AlarmType, active: bool, ctx: CallContext = ANONYMOUS
    ) -> Result[list[tuple[int, int]]]:
        """Raise or clear an alarm through Raft; the alarms active afterwards."""
        res = await self.propose(cmds.Alarm(member_id, alarm, active))
        assert isinstance(res.response, AlarmResponse)
        return self.result(res.response.alarms, res.revision)

    async def defragment(self, ctx: CallContext = ANONYMOUS) -> Result[tuple[int, int]]:
        """Rewrite this member's state file compactly: (bytes before, bytes after)."""
        self.node.check_serving()
        sizes = await self.node.run_io(self.node.mvcc.defragment)
        return self.result(sizes)

    def snapshot(self, ctx: CallContext = ANONYMOUS) -> Iterator[bytes]:
        """The whole state machine as one consistent stream (with a sha256 trailer);
        iterate it off the event loop, and close it if you stop early."""
        self.node.check_serving()
        return self.node.mvcc.snapshot_stream().chunks
