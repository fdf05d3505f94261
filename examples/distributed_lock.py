"""Distributed lock with fencing: several worker processes increment one counter.

Scenario: WORKERS processes each add 1 to the key `demo/lock/counter` ROUNDS times,
each read-modify-write under the lock `demo-counter`, and each write is a
`guarded_put`: it commits only while the writer still holds the lock (fencing), so
even a worker paused past its lease could not clobber the counter. With mutual
exclusion the final count is exactly WORKERS * ROUNDS; the script checks it.

Run against a local cluster (`make run` in another terminal):

    RAFTKV_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379 \
        .venv/bin/python examples/distributed_lock.py

Exits 0 when the count is exact; takes a few seconds.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

from raftkv.client import AsyncClient, default_endpoints

WORKERS = 4
ROUNDS = 10
COUNTER = "demo/lock/counter"


async def worker(name: str) -> None:
    async with AsyncClient(default_endpoints()) as c:
        for _ in range(ROUNDS):
            async with c.lock("demo-counter", ttl=5, timeout=60) as lock:
                value = int((await c.get(COUNTER)).value)
                await lock.guarded_put(COUNTER, str(value + 1).encode())
                print(f"{name}: token {lock.fencing_token} -> {value + 1}", flush=True)


async def main() -> int:
    async with AsyncClient(default_endpoints()) as c:
        await c.put(COUNTER, b"0")
    procs = [
        subprocess.Popen([sys.executable, __file__, "--worker", f"w{i}"]) for i in range(WORKERS)
    ]
    codes = [p.wait(120) for p in procs]
    async with AsyncClient(default_endpoints()) as c:
        final = int((await c.get(COUNTER)).value)
    print(f"final count {final}, expected {WORKERS * ROUNDS}")
    return 0 if final == WORKERS * ROUNDS and codes == [0] * WORKERS else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        asyncio.run(worker(sys.argv[2]))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
