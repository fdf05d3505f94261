"""Running an operation on the leader: locally if this member leads, else one peer call.

Used for what needs the leader's volatile state (lease clocks) or its view of
replication (membership changes, leader transfer). The call travels on the peer
transport (transport/rpc.py), not through any client-facing API, so it carries no
face's wording and is authenticated with the peer link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from raftkv.errors import Unavailable, Why

if TYPE_CHECKING:
    from raftkv.node.node import Node

Local = Callable[[int, list[Any]], Awaitable[Any]]


class Forwarder:
    def __init__(self, node: Node) -> None:
        self.node = node

    def register(self, method: str, handler: Local) -> None:
        """Serve `method` for peers (the handler gets the caller's id and the args)."""
        self.node.transport.rpc.register(method, handler)

    async def on_leader(
        self, method: str, args: list[Any], local: Local, timeout: float | None = None
    ) -> Any:
        node = self.node
        node.check_serving()
        if node.is_leader:
            return await local(node.id, args)
        if not node.leader:
            raise Unavailable(Why.NO_LEADER)
        return await node.transport.rpc.call(
            node.leader, method, args, timeout or node.cfg.request_timeout
        )
