"""What the gateway's handlers share: the services, etcd identities and headers.

Handlers are parse (jsonpb) -> service -> encode (etcd's shapes); typed errors from
the services become etcd's gRPC codes and messages through errors.etcd_status, in
routes.py, so no handler maps errors itself.
"""

from __future__ import annotations

from typing import Any

from raftkv.service import Services
from raftkv.service.base import Result


class Gateway:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.node = services.node
        self.ids = services.identity

    def member_id(self, raft_id: int) -> int:
        return self.ids.member_id(raft_id)

    def raft_id(self, member_id: int) -> int | None:
        return self.ids.raft_id(member_id)

    def header_fields(
        self, revision: int | None = None, term: int | None = None
    ) -> tuple[int, int, int, int]:
        """ResponseHeader's (cluster_id, member_id, revision, raft_term); revision None =
        the current one, 0 = left out. Both etcd faces build their headers from this."""
        if revision is None or term is None:
            now = self.s.now()
            revision = now.revision if revision is None else revision
            term = now.term if term is None else term
        return self.ids.cluster_id, self.ids.member_id(self.node.id), revision, term

    def header(self, revision: int | None = None, term: int | None = None) -> dict[str, Any]:
        cluster_id, member_id, revision, term = self.header_fields(revision, term)
        out: dict[str, Any] = {"cluster_id": str(cluster_id), "member_id": str(member_id)}
        if revision:
            out["revision"] = str(revision)
        if term:
            out["raft_term"] = str(term)
        return out

    def header_of(self, res: Result[Any]) -> dict[str, Any]:
        return self.header(res.revision, res.term)
