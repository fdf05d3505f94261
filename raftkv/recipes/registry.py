"""Service registry: instances announce themselves under `services/<service>/<id>`.

Each registration is bound to a lease kept alive by the registering process, so the
entry disappears within the TTL when the process dies, with no deregistration step.
Values are JSON (`{"address": ..., **metadata}`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from raftkv.client.lease import LeaseKeeper
from raftkv.recipes.view import PrefixView

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient

PREFIX = "services/"


def _decode(values: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for k, v in values.items():
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = {"address": v.decode("utf-8", "replace")}
    return out


class Registration:
    """`async with register(...)`: the entry lives exactly as long as the block."""

    def __init__(
        self,
        client: AsyncClient,
        service: str,
        instance_id: str,
        address: str,
        ttl: int,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.key = f"{PREFIX}{service}/{instance_id}"
        self.value = json.dumps({"address": address, **(meta or {})}).encode()
        self.lease = LeaseKeeper(client, ttl)

    async def __aenter__(self) -> Registration:
        await self.lease.__aenter__()
        await self.client.put(self.key, self.value, lease=self.lease.id)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.lease.close()  # the revoke deletes the key


def register(
    client: AsyncClient,
    service: str,
    instance_id: str,
    address: str,
    ttl: int = 10,
    meta: dict[str, Any] | None = None,
) -> Registration:
    return Registration(client, service, instance_id, address, ttl, meta)


async def instances(client: AsyncClient, service: str) -> dict[str, dict[str, Any]]:
    """{instance id: {"address": ..., ...}} of the live instances of `service`."""
    view = PrefixView(client, f"{PREFIX}{service}/")
    await view.load()
    return _decode(view.relative())


async def watch_instances(
    client: AsyncClient, service: str
) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """The set of instances now, then again whenever it changes."""
    view = PrefixView(client, f"{PREFIX}{service}/")
    async with contextlib.aclosing(view.updates()) as updates:
        async for _rev in updates:
            yield _decode(view.relative())
