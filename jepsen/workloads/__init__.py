"""Workloads: op generators with their final reads and the checkers that judge them."""

from jepsen.workloads.base import Context, Workload
from jepsen.workloads.register import RegisterWorkload, StaleRegisterWorkload
from jepsen.workloads.setw import SetWorkload

WORKLOADS: dict[str, type[Workload]] = {
    "register": RegisterWorkload,
    "set": SetWorkload,
    "stale-register": StaleRegisterWorkload,
}

__all__ = ["WORKLOADS", "Context", "Workload"]
