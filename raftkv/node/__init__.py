"""The asyncio runtime around the pure Raft core: storage, ticks, the Ready driver."""

from raftkv.node.membership import Member, parse_initial_cluster
from raftkv.node.node import Node, NodeConfig

__all__ = ["Member", "Node", "NodeConfig", "parse_initial_cluster"]
