"""Shared state of the gateway: the node, identity headers, alarms, leader forwarding.

Handlers in kv/lease/watch/maintenance/lock get one Gateway so that headers (cluster
and member ids), write admission (NOSPACE) and error mapping are decided in one place.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from raftkv.node.node import Node, UnavailableError
from raftkv.raft import Role
from raftkv.server.etcd.errors import (
    MSG_NO_LEADER,
    MSG_NO_SPACE,
    MSG_TIMEOUT,
    EtcdError,
    GrpcStatus,
)
from raftkv.storage.errors import MvccError, NoSpaceError
from raftkv.storage.results import ApplyResult

ALARM_NOSPACE = 1


def etcd_id(text: str) -> int:
    """A stable, nonzero uint64 like etcd's sha1-derived member ids."""
    v = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")
    return v or 1


class Gateway:
    def __init__(self, node: Node) -> None:
        self.node = node
        # (member_id, alarm type) pairs. Member-local: raftkv's replicated state has
        # no alarm table, so an ACTIVATE only blocks writes sent to this member.
        self.alarms: list[tuple[int, int]] = []
        self.session: aiohttp.ClientSession | None = None
        self._ids_key: tuple[tuple[int, str, str], ...] = ()
        self._ids_map: dict[int, int] = {}
        self._cluster_id = 0

    # --- identity -------------------------------------------------------------------
    def _ids(self) -> dict[int, int]:
        """raft id -> etcd member id, recomputed only when the membership changes (every
        watch event carries a header, so this is on a hot path)."""
        key = tuple((m.id, m.name, m.peer_url) for m in self.node.members)
        if key != self._ids_key:
            self._ids_key = key
            self._ids_map = {i: etcd_id(f"raftkv-member/{n}/{u}") for i, n, u in key}
            first = min(key, default=(0, "", ""))  # the oldest member still present
            self._cluster_id = etcd_id(f"raftkv-cluster/{first[1]}/{first[2]}")
        return self._ids_map

    def member_id(self, raft_id: int) -> int:
        return self._ids().get(raft_id, 0)

    def raft_id(self, member_id: int) -> int | None:
        for rid, mid in self._ids().items():
            if mid == member_id:
                return rid
        return None

    @property
    def cluster_id(self) -> int:
        """Derived from the oldest member still in the cluster: raftkv stores no cluster
        id, and this changes only if that member is removed (etcd's never changes)."""
        self._ids()
        return self._cluster_id

    def header(self, revision: int | None = None) -> dict[str, Any]:
        """ResponseHeader; revision None = the current one, 0 = left out."""
        if revision is None:
            revision = self.node.mvcc.current_revision()
        out: dict[str, Any] = {
            "cluster_id": str(self.cluster_id),
            "member_id": str(self.member_id(self.node.id)),
        }
        if revision:
            out["revision"] = str(revision)
        term = self.node.raft.term
        if term:
            out["raft_term"] = str(term)
        return out

    # --- writes ---------------------------------------------------------------------
    def check_space(self) -> None:
        if any(a == ALARM_NOSPACE for _, a in self.alarms):
            raise EtcdError(GrpcStatus.RESOURCE_EXHAUSTED, MSG_NO_SPACE)

    async def propose(self, cmd: Any, growing: bool = True) -> ApplyResult:
        """Replicate `cmd`; etcd's error for refusals. `growing` writes obey NOSPACE."""
        if growing:
            self.check_space()
        try:
            res = await self.node.propose(cmd)
        except UnavailableError as e:
            raise unavailable(e) from e
        if res.error is not None:
            if isinstance(res.error, NoSpaceError):
                self.raise_alarm(ALARM_NOSPACE)
            raise EtcdError.from_mvcc(res.error)
        return res

    def raise_alarm(self, alarm: int) -> None:
        me = self.member_id(self.node.id)
        if (me, alarm) not in self.alarms:
            self.alarms.append((me, alarm))

    async def linearize(self, serializable: bool) -> None:
        if serializable:
            return
        try:
            await self.node.read_barrier()
        except UnavailableError as e:
            raise unavailable(e) from e

    # --- leader-only state (lease clocks) ------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.node.role == Role.LEADER

    async def leader_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Ask the leader's native /v1 API (lease clocks live only on the leader)."""
        url = self.node.leader_client_url
        if url is None:
            raise EtcdError(GrpcStatus.UNAVAILABLE, MSG_NO_LEADER)
        if self.session is None:
            self.session = aiohttp.ClientSession()
        try:
            async with self.session.request(
                method,
                url + path,
                json=body,
                headers={"X-Raftkv-Forwarded": "1"},
                timeout=aiohttp.ClientTimeout(total=self.node.cfg.request_timeout),
            ) as r:
                return r.status, await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            raise EtcdError(GrpcStatus.UNAVAILABLE, MSG_TIMEOUT) from e

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


def unavailable(e: UnavailableError) -> EtcdError:
    msg = MSG_NO_LEADER if "no leader" in str(e) else MSG_TIMEOUT
    return EtcdError(GrpcStatus.UNAVAILABLE, msg)


def mvcc_error(e: MvccError) -> EtcdError:
    return EtcdError.from_mvcc(e)
