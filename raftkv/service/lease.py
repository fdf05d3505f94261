"""Leases: grant, revoke, keepalive, time-to-live, list.

Lease records are replicated state; their clocks are not (wall time is not
deterministic), so only the leader runs them (node/lessor.py). A keepalive or a
remaining-TTL lookup on a follower is forwarded to the leader over the peer link
(one internal call, `lease.keepalive` / `lease.remaining`), as etcd forwards them.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkv.errors import LeaseNotFound, NoSpace, Unavailable, Why
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.service.forward import Forwarder
from raftkv.storage import commands as cmds
from raftkv.storage.leases import MAX_ID
from raftkv.storage.results import LeaseGrantResponse, LeaseRevokeResponse


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """A lease as a client sees it: remaining TTL on the leader's clock."""

    id: int
    granted_ttl: int
    ttl: int  # seconds left
    keys: tuple[bytes, ...] = ()


class LeaseService(ServiceBase):
    def __init__(self, node, limits, forward: Forwarder) -> None:  # type: ignore[no-untyped-def]
        super().__init__(node, limits)
        self.forward = forward
        forward.register("lease.keepalive", self._keepalive_here)
        forward.register("lease.remaining", self._remaining_here)

    @property
    def min_ttl(self) -> int:
        return self.node.lessor.min_ttl

    async def grant(
        self, ttl: int, lease_id: int = 0, ctx: CallContext = ANONYMOUS
    ) -> Result[LeaseGrantResponse]:
        """A TTL below the minimum (1.5 election timeouts) is raised to it, as etcd does."""
        if self.node.mvcc.nospace:
            raise NoSpace()
        ttl = self.node.lessor.effective_ttl(ttl)
        res = await self.propose(cmds.LeaseGrant(ttl, lease_id))
        assert isinstance(res.response, LeaseGrantResponse)
        return self.result(res.response, res.revision)

    async def revoke(self, lease_id: int, ctx: CallContext = ANONYMOUS) -> Result[None]:
        res = await self.propose(cmds.LeaseRevoke(lease_id))
        assert isinstance(res.response, LeaseRevokeResponse)
        return self.result(None, res.revision)

    async def keepalive(self, lease_id: int, ctx: CallContext = ANONYMOUS) -> Result[int]:
        """Renew on the leader; the TTL granted. LeaseNotFound if it is unknown."""
        self.node.check_serving()
        args = [lease_id, self.node.driver.applied]
        ttl = await self.forward.on_leader("lease.keepalive", args, self._keepalive_here)
        return self.result(int(ttl))

    async def _caught_up(self, seen: object) -> None:
        """The caller has applied up to `seen` (say, the grant it just answered): the
        leader answers only once it has applied as much, or it could miss that lease."""
        if not self.node.is_leader:
            raise Unavailable(Why.LEADER_CHANGED)
        if isinstance(seen, int) and seen > self.node.driver.applied:
            await self.node.wait_applied(seen)

    async def _keepalive_here(self, _frm: int, args: list[object]) -> int:
        lease_id, seen = args
        await self._caught_up(seen)
        ttl = self.node.lessor.keepalive(int(lease_id))  # type: ignore[call-overload]
        if ttl is None:
            raise LeaseNotFound(int(lease_id))  # type: ignore[call-overload]
        return ttl

    async def time_to_live(
        self, lease_id: int, keys: bool = False, ctx: CallContext = ANONYMOUS
    ) -> Result[LeaseStatus]:
        """The lease with its remaining TTL (read linearizably; the clock is the
        leader's). LeaseNotFound if it does not exist."""
        await self.linearize(False)
        info = self.node.mvcc.lease_get(lease_id) if 0 < lease_id <= MAX_ID else None
        if info is None:
            raise LeaseNotFound(lease_id)
        args = [lease_id, self.node.driver.applied]
        left = await self.forward.on_leader("lease.remaining", args, self._remaining_here)
        status = LeaseStatus(lease_id, info.ttl, int(left), info.keys if keys else ())
        return self.result(status)

    async def _remaining_here(self, _frm: int, args: list[object]) -> int:
        lease_id, seen = args
        lid = int(lease_id)  # type: ignore[call-overload]
        await self._caught_up(seen)
        info = self.node.mvcc.lease_get(lid)
        if info is None:
            raise LeaseNotFound(lid)
        left = self.node.lessor.remaining(lid)
        return info.ttl if left is None else left

    async def leases(self, ctx: CallContext = ANONYMOUS) -> Result[list[int]]:
        await self.linearize(False)
        return self.result(self.node.mvcc.lease_list())

    async def exists(self, lease_id: int) -> bool:
        """Whether the lease exists now (linearizable): the recipes check it first."""
        await self.linearize(False)
        return 0 < lease_id <= MAX_ID and self.node.mvcc.lease_get(lease_id) is not None
