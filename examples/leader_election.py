"""Leader election with hand-over: the leader dies, another worker takes over.

Scenario: three worker processes campaign for `demo-leader` with a TTL of TTL
seconds; the leader proclaims its name. The script observes the election, kills the
leader with SIGKILL (no resignation: only its lease expiring can end its term), and
checks that another worker is leader within TTL + a margin.

Run against a local cluster (`make run` in another terminal):

    RAFTKV_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379 \
        .venv/bin/python examples/leader_election.py

Exits 0 when the hand-over happened in time; takes about TTL seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from raftkv.client import AsyncClient, default_endpoints
from raftkv.recipes import Election

TTL = 3
NAME = "demo-leader"


async def worker(name: str) -> None:
    async with AsyncClient(default_endpoints()) as c:
        e = Election(c, NAME, ttl=TTL)
        await e.campaign(name)
        print(f"{name}: elected", flush=True)
        await e.lost.wait()  # lead until the lease is gone (or we are killed)


async def main() -> int:
    procs = {
        f"worker-{i}": subprocess.Popen([sys.executable, __file__, "--worker", f"worker-{i}"])
        for i in range(3)
    }
    try:
        async with AsyncClient(default_endpoints()) as c:
            observer = Election(c, NAME).observe()
            first = None
            async for kv in observer:
                if kv is not None:
                    first = kv.value.decode()
                    break
            print(f"leader: {first}; killing it", flush=True)
            assert first is not None
            killed_at = time.monotonic()
            os.kill(procs[first].pid, signal.SIGKILL)
            async with asyncio.timeout(TTL + 5):
                async for kv in observer:
                    if kv is not None and kv.value.decode() != first:
                        took = time.monotonic() - killed_at
                        print(f"new leader: {kv.value.decode()} after {took:.1f}s", flush=True)
                        return 0
            return 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
            p.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2]))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
