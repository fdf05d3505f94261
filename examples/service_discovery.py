"""Service discovery: instances register with a TTL; a dead one vanishes by itself.

Scenario: three `api` instances (separate processes) register under `services/api/`
with a TTL of TTL seconds, kept alive in the background. The script follows the live
set with `watch_instances`, kills one instance with SIGKILL (it cannot deregister),
and checks that the set shrinks to the other two within TTL + a margin.

Run against a local cluster (`make run` in another terminal):

    RAFTKV_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379 \
        .venv/bin/python examples/service_discovery.py

Exits 0 when the dead instance disappeared in time; takes about TTL seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from raftkv.client import AsyncClient, default_endpoints
from raftkv.recipes import register, watch_instances

TTL = 3


async def instance(instance_id: str, port: int) -> None:
    async with (
        AsyncClient(default_endpoints()) as c,
        register(c, "api", instance_id, f"127.0.0.1:{port}", ttl=TTL),
    ):
        print(f"{instance_id}: registered", flush=True)
        await asyncio.sleep(3600)


async def main() -> int:
    async with AsyncClient(default_endpoints()) as c:
        await c.delete("services/api/", prefix=True)  # a clean slate for the demo
        procs = {
            f"api-{i}": subprocess.Popen(
                [sys.executable, __file__, "--instance", f"api-{i}", str(8000 + i)]
            )
            for i in range(3)
        }
        try:
            killed_at = 0.0
            async with asyncio.timeout(30):
                async for live in watch_instances(c, "api"):
                    print(f"live instances: {sorted(live)}", flush=True)
                    if not killed_at and len(live) == 3:
                        print("killing api-0", flush=True)
                        os.kill(procs["api-0"].pid, signal.SIGKILL)
                        killed_at = time.monotonic()
                    elif killed_at and set(live) == {"api-1", "api-2"}:
                        took = time.monotonic() - killed_at
                        print(f"api-0 expired after {took:.1f}s (TTL {TTL}s)")
                        return 0 if took < TTL + 5 else 1
            return 1
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.terminate()
                p.wait(10)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--instance"]:
        asyncio.run(instance(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    sys.exit(asyncio.run(main()))
