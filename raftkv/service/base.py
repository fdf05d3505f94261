"""What every service shares: the call context, results with their header, proposing.

A face builds a `CallContext` per request (who is calling — authentication lands
here — and from where), calls a service, and encodes the `Result` or the typed error
(raftkv.errors) it gets. Services never see HTTP or gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from raftkv.reqid import new_request_id
from raftkv.service.limits import Limits
from raftkv.storage import commands as cmds
from raftkv.storage.results import ApplyResult

if TYPE_CHECKING:
    from raftkv.node.node import Node

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who asks. `user` is None until authentication is enabled."""

    user: str | None = None
    source: str = ""


ANONYMOUS = CallContext()


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A response with the header every face reports: the store revision it reflects
    and the Raft term of the member that answered."""

    response: T
    revision: int
    term: int


class ServiceBase:
    def __init__(self, node: Node, limits: Limits) -> None:
        self.node = node
        self.limits = limits

    def result(self, response: T, revision: int | None = None) -> Result[T]:
        if revision is None:
            revision = self.node.mvcc.current_revision()
        return Result(response, revision, self.node.term)

    async def propose(self, cmd: cmds.Command, client_id: bytes | None = None) -> ApplyResult:
        """Bound, propose and apply one command; raise the error it applied with."""
        cmd = cmd.with_ids(new_request_id(), client_id)
        cmds.validate(cmd, self.node.mvcc.env.max_key_size())
        data = self.limits.check_command(cmd)
        res = await self.node.propose(cmd, data)
        if res.error is not None:
            raise res.error
        return res

    async def linearize(self, serializable: bool) -> None:
        if not serializable:
            await self.node.read_barrier()
        else:
            self.node.check_serving()
