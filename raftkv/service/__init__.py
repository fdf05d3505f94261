"""The meaning of every operation, once: every API face is parse -> service -> encode.

Services take typed inputs (the storage commands, plain values), return `Result`s (a
response with its revision and term), and raise the typed errors of raftkv.errors.
They know nothing of HTTP or gRPC; each face owns the table that maps those errors to
its own statuses and wording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftkv.service.base import ANONYMOUS, CallContext, Result
from raftkv.service.cluster import ClusterService
from raftkv.service.forward import Forwarder
from raftkv.service.identity import Identity
from raftkv.service.kv import KvService
from raftkv.service.lease import LeaseService
from raftkv.service.limits import Limits
from raftkv.service.maintenance import MaintenanceService
from raftkv.service.overview import OverviewService
from raftkv.service.recipes import RecipeService
from raftkv.service.watch import WatchService

if TYPE_CHECKING:
    from raftkv.node.node import Node

__all__ = ["ANONYMOUS", "CallContext", "Limits", "Result", "Services"]


class Services:
    def __init__(self, node: Node, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        self.node = node
        self.limits = limits
        forward = Forwarder(node)
        self.identity = Identity(node.membership)
        self.kv = KvService(node, limits)
        self.lease = LeaseService(node, limits, forward)
        self.watch = WatchService(node, limits)
        self.cluster = ClusterService(node, limits, forward)
        self.maintenance = MaintenanceService(node, limits)
        self.overview = OverviewService(node, limits, forward, self.maintenance)
        self.recipes = RecipeService(node, limits, self.kv, self.lease)
        node.hub.max_watchers = limits.max_watchers

    def now(self) -> Result[None]:
        """The header of an answer that reflects no particular write: this member's
        current revision and term."""
        return self.kv.result(None)
