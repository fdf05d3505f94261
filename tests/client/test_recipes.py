"""Lock, election, service registry and config registry against a live cluster."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel

from raftkv.client import AsyncClient
from raftkv.recipes import ConfigRegistry, Election, instances, register, watch_instances
from raftkv.recipes.lock import Lock

pytestmark = pytest.mark.timeout(90)


async def test_lock_mutual_exclusion_under_contention(client: AsyncClient) -> None:
    holders: list[int] = []
    tokens: list[int] = []
    inside = 0

    async def worker(i: int) -> None:
        nonlocal inside
        for _ in range(3):
            async with client.lock("mx", ttl=5) as lock:
                inside += 1
                assert inside == 1, "two holders at once"
                holders.append(i)
                tokens.append(lock.fencing_token)
                cur = int((await client.get("mx/counter")).value)
                await asyncio.sleep(0.01)
                await lock.guarded_put("mx/counter", str(cur + 1).encode())
                inside -= 1

    await client.put("mx/counter", b"0")
    await asyncio.gather(*(worker(i) for i in range(5)))
    assert int((await client.get("mx/counter")).value) == 15
    assert tokens == sorted(tokens) and len(set(tokens)) == 15  # fencing tokens increase
    assert (await client.get_prefix("locks/mx/")).count == 0  # nothing left behind


async def test_lock_timeout_and_cancel_leave_nothing(client: AsyncClient) -> None:
    async with client.lock("to", ttl=5):
        with pytest.raises(TimeoutError):
            await Lock(client, "to", ttl=5, timeout=0.5).acquire()
        waiter = asyncio.create_task(Lock(client, "to", ttl=5).acquire())
        await asyncio.sleep(0.3)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (await client.get_prefix("locks/to/")).count == 1  # only the holder's key


async def test_election_hand_over_and_observe(client: AsyncClient) -> None:
    a, b = Election(client, "e", ttl=3), Election(client, "e", ttl=3)
    seen: list[bytes | None] = []

    async def observe() -> None:
        async for kv in a.observe():
            seen.append(kv.value if kv else None)
            if len(seen) == 4:
                return

    async def first_view() -> None:
        while not seen:
            await asyncio.sleep(0.01)

    obs = asyncio.create_task(observe())
    # The observer must have loaded before anyone campaigns: loaded after, it would
    # start at "a" and see three values, not four, and wait for a fourth forever.
    await asyncio.wait_for(first_view(), 5)
    await a.campaign(b"a")
    leader = await a.leader()
    assert leader is not None and leader.value == b"a"
    second = asyncio.create_task(b.campaign(b"b"))
    await asyncio.sleep(0.5)
    assert not second.done()
    await a.proclaim(b"a2")
    await a.resign()
    await asyncio.wait_for(second, 5)
    assert (await b.leader()).value == b"b"  # type: ignore[union-attr]
    await asyncio.wait_for(obs, 5)
    assert seen == [None, b"a", b"a2", b"b"]
    await b.resign()


async def test_registry_entries_expire_and_live_view(client: AsyncClient) -> None:
    views: list[set[str]] = []

    async def follow() -> None:
        async for inst in watch_instances(client, "api"):
            views.append(set(inst))
            if len(views) >= 2 and not inst:
                return

    watcher = asyncio.create_task(follow())
    reg = register(client, "api", "i1", "10.0.0.1:80", ttl=2)
    await reg.__aenter__()
    assert (await instances(client, "api")) == {"i1": {"address": "10.0.0.1:80"}}
    await reg.lease.close(revoke=False)  # the process "dies": no more keepalives
    await asyncio.wait_for(watcher, 10)  # the entry vanishes within the TTL
    assert {"i1"} in views and views[-1] == set()
    assert await instances(client, "api") == {}


class AppConfig(BaseModel):
    workers: int = 1
    name: str = "app"


async def test_config_registry_reloads(client: AsyncClient) -> None:
    await client.put("config/app/workers", b"2")
    changes: list[dict[str, str]] = []
    cfg = ConfigRegistry(
        client, "config/app/", model=AppConfig, on_change=lambda r: changes.append(r.as_text())
    )
    async with cfg:
        assert cfg.typed == AppConfig(workers=2)
        r = await client.put("config/app/name", b"svc")
        await cfg.wait_for_revision(r.revision)
        assert cfg.typed == AppConfig(workers=2, name="svc")
        r = await client.put("config/app/workers", b"not-a-number")
        await cfg.wait_for_revision(r.revision)
        assert cfg.error is not None and cfg.typed == AppConfig(workers=2, name="svc")
        r = await client.delete("config/app/", prefix=True)
        await cfg.wait_for_revision(r.revision)
        assert cfg.values == {} and cfg.typed == AppConfig()
    assert changes[0] == {"workers": "2", "name": "svc"} and changes[-1] == {}
