"""The client keeps working when the node it talks to dies: reads and writes fail
over, and a watch resumes on another node without losing or repeating an event."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.client import AsyncClient, Indeterminate, Unavailable
from tests.client.conftest import endpoints
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(120)


def _name_of(c: Cluster, url: str) -> str:
    return next(n for n, m in c.members.items() if url.endswith(f":{m.client_port}"))


async def test_watch_survives_its_node_dying_mid_stream(own_cluster: Cluster) -> None:
    c = own_cluster
    async with (
        AsyncClient(endpoints(c), timeout=2) as writer,
        AsyncClient(endpoints(c), timeout=2) as watcher,
    ):
        start = (await writer.put("w/0", b"0")).revision
        seen: list[tuple[int, bytes]] = []
        n = 60

        async def consume() -> None:
            async for e in watcher.watch("w/", prefix=True, start_revision=start):
                seen.append((e.revision, e.kv.value))
                if len(seen) == n:
                    return

        task = asyncio.create_task(consume())
        for i in range(1, n):
            if i == 20:  # kill the node serving the watch, mid-stream
                c.kill(_name_of(c, watcher.transport.endpoints.pick()))
            while True:
                try:
                    await writer.put(f"w/{i}", str(i).encode())
                    break
                except Indeterminate:  # may have applied: the check below tolerates it
                    if (await writer.get(f"w/{i}")).value == str(i).encode():
                        break
        await asyncio.wait_for(task, 30)
        revs = [r for r, _ in seen]
        assert revs == sorted(set(revs)), "events out of order or repeated"
        assert [v for _, v in seen] == [str(i).encode() for i in range(n)]


async def test_writes_fail_over_and_never_blindly_retry(own_cluster: Cluster) -> None:
    c = own_cluster
    async with AsyncClient(endpoints(c), timeout=2, deadline=20) as cl:
        used = _name_of(c, cl.transport.endpoints.pick())
        await cl.put("f/a", b"1")
        c.kill(used)  # connection refused from now on: safe to retry elsewhere
        r = await cl.put("f/b", b"2")
        assert (await cl.get("f/b")).mod_revision == r.revision
        assert _name_of(c, cl.transport.endpoints.pick()) != used
        counter = 0
        for _ in range(30):  # a CAS counter through the failover: exact despite retries
            while True:
                try:
                    cur = await cl.get("f/counter")
                    nxt, mod = int(cur.value) + 1, cur.mod_revision
                except Exception:  # noqa: BLE001 - KeyNotFound at the start
                    nxt, mod = 1, 0
                try:
                    await cl.put_if_mod_revision("f/counter", str(nxt).encode(), mod)
                    counter += 1
                    break
                except Indeterminate:
                    continue
                except Exception:  # noqa: BLE001 - CompareFailed: re-read, retry
                    if (await cl.get("f/counter")).value == str(nxt).encode():
                        counter += 1  # our indeterminate write applied
                        break
        assert int((await cl.get("f/counter")).value) == counter == 30


async def test_unavailable_when_every_node_is_down(own_cluster: Cluster) -> None:
    c = own_cluster
    for n in list(c.members):
        c.kill(n)
    async with AsyncClient(endpoints(c), timeout=0.5, deadline=2) as cl:
        with pytest.raises(Unavailable) as e:
            await cl.put("x", b"y")
        assert not isinstance(e.value, Indeterminate)  # refused: nothing was sent
        with pytest.raises(Unavailable):
            await cl.get("x")
