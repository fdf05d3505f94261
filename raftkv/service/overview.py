"""Every member's status in one answer (`GET /v1/cluster/status`, the web console).

Asked of any member, it collects the others' status over the peer links (the same
authenticated RPC the leader forwarding uses), in parallel, each with a short
deadline: a member that is down shows up as unreachable instead of delaying the
answer. A browser cannot do this itself — the other members' client ports are other
origins, and raftkv sends no CORS headers by default.
"""

from __future__ import annotations

import asyncio
from typing import Any

from raftkv.errors import RaftkvError
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.service.forward import Forwarder
from raftkv.service.maintenance import MaintenanceService

ASK_TIMEOUT = 1.0  # seconds per member


class OverviewService(ServiceBase):
    def __init__(self, node, limits, forward: Forwarder, maintenance: MaintenanceService) -> None:  # type: ignore[no-untyped-def]
        super().__init__(node, limits)
        self.maintenance = maintenance
        forward.register("member.status", self._status_here)

    def local(self) -> dict[str, Any]:
        """This member's status, health and space, as the console shows them."""
        n = self.node
        ok, reason = self.maintenance.health()
        return {
            **n.status(),
            "healthy": ok,
            "health_reason": reason,
            "is_learner": n.membership.is_learner(n.id),
            "quota_bytes": n.mvcc.quota_bytes,
            "space_used": n.mvcc.space_used(),
            "reachable": True,
        }

    async def _status_here(self, caller: int, args: list[Any]) -> dict[str, Any]:
        return self.local()

    async def _ask(self, member_id: int) -> dict[str, Any]:
        if member_id == self.node.id:
            return self.local()
        try:
            return dict(
                await self.node.transport.rpc.call(member_id, "member.status", [], ASK_TIMEOUT)
            )
        except (RaftkvError, OSError) as e:
            return {"reachable": False, "error": type(e).__name__}

    async def cluster(self, ctx: CallContext = ANONYMOUS) -> Result[list[dict[str, Any]]]:
        """One entry per member (id, name, URLs, then its status or `reachable: false`)."""
        members = list(self.node.members)
        answers = await asyncio.gather(*(self._ask(m.id) for m in members))
        out = []
        for m, st in zip(members, answers, strict=True):
            out.append(
                {
                    **st,
                    "id": m.id,
                    "name": m.name,
                    "peer_url": m.peer_url,
                    "client_url": m.client_url or None,
                    "is_learner": self.node.membership.is_learner(m.id),
                }
            )
        return self.result(out)
