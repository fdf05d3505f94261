"""Workloads: op generators with their final reads and the checkers that judge them."""

from jepsen.workloads.base import Context, Workload
from jepsen.workloads.lease import LeaseWorkload
from jepsen.workloads.listappend import ListAppendWorkload
from jepsen.workloads.lock import FencedLockWorkload, UnfencedLockWorkload
from jepsen.workloads.register import (
    RegisterWorkload,
    RetryingRegisterWorkload,
    StaleRegisterWorkload,
)
from jepsen.workloads.setw import SetWorkload
from jepsen.workloads.watch import WatchWorkload

WORKLOADS: dict[str, type[Workload]] = {
    "register": RegisterWorkload,
    "register-retry": RetryingRegisterWorkload,
    "set": SetWorkload,
    "stale-register": StaleRegisterWorkload,
    "unfenced-lock": UnfencedLockWorkload,
    "fenced-lock": FencedLockWorkload,
    "watch": WatchWorkload,
    "lease": LeaseWorkload,
    "list-append": ListAppendWorkload,
}

__all__ = ["WORKLOADS", "Context", "Workload"]
