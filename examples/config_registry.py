"""Config registry: typed application config that reloads itself on every change.

Scenario: the app's settings live under `demo/config/` (one key per field). The
registry loads them as one consistent snapshot into a pydantic model, then follows a
watch; an operator (here: the same script) changes values, and the `on_change`
callback sees each new version. A value the model rejects keeps the last good config.

Run against a local cluster (`make run` in another terminal):

    RAFTKV_ENDPOINTS=http://127.0.0.1:2379,http://127.0.0.1:12379,http://127.0.0.1:22379 \
        .venv/bin/python examples/config_registry.py

Exits 0 when every change was seen; takes about a second.
"""

from __future__ import annotations

import asyncio
import sys

from pydantic import BaseModel

from raftkv.client import AsyncClient, default_endpoints
from raftkv.recipes import ConfigRegistry

PREFIX = "demo/config/"


class AppConfig(BaseModel):
    workers: int = 1
    log_level: str = "info"
    feature_x: bool = False


def changed(reg: ConfigRegistry[AppConfig]) -> None:
    status = f"rejected ({reg.error.error_count()} errors)" if reg.error else "ok"
    print(f"rev {reg.revision}: {reg.as_text()} -> {reg.typed!r} [{status}]", flush=True)


async def main() -> int:
    async with AsyncClient(default_endpoints()) as c:
        await c.delete(PREFIX, prefix=True)
        await c.put(PREFIX + "workers", b"2")
        async with ConfigRegistry(c, PREFIX, model=AppConfig, on_change=changed) as reg:
            print(f"loaded at rev {reg.revision}: {reg.typed!r}")
            ok = reg.typed == AppConfig(workers=2)
            for key, value in (("workers", b"8"), ("feature_x", b"true"), ("workers", b"x")):
                rev = (await c.put(PREFIX + key, value)).revision
                await reg.wait_for_revision(rev)
            ok = ok and reg.typed == AppConfig(workers=8, feature_x=True) and reg.error is not None
        print("config followed every change" if ok else "MISMATCH")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
