"""Cluster membership and leadership: list, add, promote, remove, transfer.

Changes run on the leader (forwarded over the peer link when asked elsewhere); the
member that was asked then waits until it has applied the change itself, so the list
it answers with already shows it — the read-your-writes rule every face keeps.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from raftkv.errors import BadTransferee, Invalid, InvalidArgument, Unsupported
from raftkv.node import reconfig
from raftkv.node.membership import Member
from raftkv.service.base import ANONYMOUS, CallContext, Result, ServiceBase
from raftkv.service.forward import Forwarder


@dataclass(frozen=True, slots=True)
class MemberView:
    id: int
    name: str
    peer_url: str
    client_url: str | None
    is_leader: bool
    is_learner: bool


def check_url(url: object, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """A member URL: scheme://host:port with a real port, or InvalidArgument."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise InvalidArgument(Invalid.BAD_MEMBER_URLS)
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        raise InvalidArgument(Invalid.BAD_MEMBER_URLS) from None
    if u.scheme not in schemes or not u.hostname or not port or u.path.strip("/"):
        raise InvalidArgument(Invalid.BAD_MEMBER_URLS)
    return url.rstrip("/")


def derived_name(peer_url: str) -> str:
    """etcd's MemberAdd takes no name, raftkv's members need one: derive it from the
    peer URL (stable, so the operator can compute the --name to start the node with)."""
    return "member-" + hashlib.sha1(peer_url.encode()).hexdigest()[:10]


class ClusterService(ServiceBase):
    def __init__(self, node, limits, forward: Forwarder) -> None:  # type: ignore[no-untyped-def]
        super().__init__(node, limits)
        self.forward = forward
        forward.register("member.add", self._add_here)
        forward.register("member.promote", self._promote_here)
        forward.register("member.remove", self._remove_here)
        forward.register("leader.transfer", self._transfer_here)

    def view(self, m: Member) -> MemberView:
        ms = self.node.membership
        return MemberView(
            m.id,
            m.name,
            m.peer_url,
            m.client_url or None,
            m.id == self.node.leader,
            ms.is_learner(m.id),
        )

    def members(self, ctx: CallContext = ANONYMOUS) -> Result[list[MemberView]]:
        return self.result([self.view(m) for m in self.node.members])

    async def _settle(self, answer: list[Any]) -> int:
        """Wait until the change the leader applied at `answer[1]` applied here too."""
        member_id, index = int(answer[0]), int(answer[1])
        await self.node.wait_applied(index)
        return member_id

    async def add(
        self,
        peer_url: str,
        name: str | None = None,
        client_url: str | None = None,
        learner: bool = True,
        ctx: CallContext = ANONYMOUS,
    ) -> Result[MemberView]:
        """Add a member as a learner; promote it too unless `learner` (etcd adds voters
        directly; raftkv always goes through a learner so it catches up first)."""
        peer_url = check_url(peer_url)
        if client_url is not None:
            client_url = check_url(client_url)
        name = name or derived_name(peer_url)
        if len(name) > 256:
            raise InvalidArgument(Invalid.BAD_FIELD, "name is too long")
        args = [name, peer_url, client_url]
        nid = await self._settle(await self.forward.on_leader("member.add", args, self._add_here))
        if not learner:
            await self.promote(nid)
        m = self.node.membership.get(nid)
        assert m is not None
        return self.result(self.view(m))

    async def _add_here(self, _frm: int, args: list[Any]) -> list[int]:
        name, peer_url, client_url = args
        m = await reconfig.add_learner(self.node, str(name), str(peer_url), client_url)
        return [m.id, self.node.driver.applied]

    async def promote(self, member_id: int, ctx: CallContext = ANONYMOUS) -> Result[MemberView]:
        answer = await self.forward.on_leader("member.promote", [member_id], self._promote_here)
        await self._settle(answer)
        return self.result(self.view(reconfig.member(self.node, member_id)))

    async def _promote_here(self, _frm: int, args: list[Any]) -> list[int]:
        m = await reconfig.promote(self.node, int(args[0]))
        return [m.id, self.node.driver.applied]

    async def remove(self, member_id: int, ctx: CallContext = ANONYMOUS) -> Result[MemberView]:
        m = reconfig.member(self.node, member_id)
        answer = await self.forward.on_leader("member.remove", [member_id], self._remove_here)
        if member_id != self.node.id:
            await self._settle(answer)
        return self.result(MemberView(m.id, m.name, m.peer_url, m.client_url or None, False, False))

    async def _remove_here(self, _frm: int, args: list[Any]) -> list[int]:
        m = await reconfig.remove(self.node, int(args[0]))
        return [m.id, self.node.driver.applied]

    async def update(
        self, member_id: int, peer_urls: list[str], ctx: CallContext = ANONYMOUS
    ) -> None:
        reconfig.member(self.node, member_id)
        raise Unsupported("a member's peer URL cannot be changed")

    async def transfer_leader(self, to: int, ctx: CallContext = ANONYMOUS) -> Result[int]:
        if not self.node.membership.is_voter(to):
            raise BadTransferee(to)
        leader = await self.forward.on_leader("leader.transfer", [to], self._transfer_here)
        return self.result(int(leader))

    async def _transfer_here(self, _frm: int, args: list[Any]) -> int:
        return await reconfig.transfer_leader(self.node, int(args[0]))
