"""A holder frozen (SIGSTOP) past its lease TTL wakes up unable to write: the lock
moved on and `guarded_put` is fenced by the lock key's create revision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from raftkv.client import AsyncClient
from tests.client.conftest import endpoints
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(90)


async def test_paused_holder_cannot_write(cluster: Cluster) -> None:
    eps = endpoints(cluster)
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.client.holder", ",".join(eps), "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdin is not None and holder.stdout is not None
        first = holder.stdout.readline().split()
        assert first[0] == "held"
        os.kill(holder.pid, signal.SIGSTOP)  # a GC pause / frozen VM, longer than the TTL
        async with AsyncClient(eps, timeout=2) as c:
            async with c.lock("fence", ttl=5, timeout=20) as lock:
                assert lock.fencing_token > int(first[1])
                await lock.guarded_put("fence/data", b"from-new-holder")
                os.kill(holder.pid, signal.SIGCONT)
                holder.stdin.write("go\n")
                holder.stdin.flush()
                assert holder.stdout.readline().strip() == "lost"
            assert (await c.get("fence/data")).value == b"from-new-holder"
        assert holder.wait(10) == 0
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGCONT)
            holder.kill()
            holder.wait()
