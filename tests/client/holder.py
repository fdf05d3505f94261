"""A lock holder run as a subprocess by test_fencing (so it can be SIGSTOPped).

It takes the lock, prints `held <token>`, waits for a line on stdin, then tries a
guarded write and prints `wrote` or `lost`.
"""

from __future__ import annotations

import asyncio
import sys

from raftkv.client import AsyncClient, LockLost


async def main(endpoints: str, ttl: int) -> None:
    async with AsyncClient(endpoints.split(","), timeout=2) as c:
        lock = c.lock("fence", ttl=ttl)
        await lock.acquire()
        print(f"held {lock.fencing_token}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        try:
            await lock.guarded_put("fence/data", b"from-paused-holder")
            print("wrote", flush=True)
        except LockLost:
            print("lost", flush=True)
        await lock.release()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
