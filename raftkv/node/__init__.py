"""The asyncio runtime around the pure Raft core: storage, ticks, Ready loop, waiters."""

from raftkv.node.membership import Member, load_or_bootstrap_members, parse_initial_cluster
from raftkv.node.node import Node, NodeConfig, NotLeaderError, UnavailableError

__all__ = [
    "Member",
    "Node",
    "NodeConfig",
    "NotLeaderError",
    "UnavailableError",
    "load_or_bootstrap_members",
    "parse_initial_cluster",
]
