"""Request ids: unique per proposal, cheap to make.

A proposal's id matches its applied result to its waiter on the proposing member and
must never collide with another in-flight proposal anywhere in the cluster. A random
64-bit prefix per process plus a 64-bit counter gives that without a getrandom(2)
call per request (a measurable cost per put on sandboxed kernels, where every
syscall is expensive).
"""

from __future__ import annotations

import itertools
import os

_PREFIX = os.urandom(8)
_COUNTER = itertools.count(1)


def new_request_id() -> bytes:
    """16 bytes: this process's random prefix, then a big-endian sequence number."""
    return _PREFIX + next(_COUNTER).to_bytes(8, "big")
