"""The client keeps working when the node it talks to dies: reads and writes fail
over, and a watch resumes on another node without losing or repeating an event."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from raftkv.client import AsyncClient, CompareFailed, Indeterminate, KeyNotFound, Unavailable
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
                except Indeterminate:  # the write's node died mid-request: did it apply?
                    with contextlib.suppress(KeyNotFound):
                        if (await writer.get(f"w/{i}")).value == str(i).encode():
                            break
        await asyncio.wait_for(task, 30)
        revs = [r for r, _ in seen]
        assert revs == sorted(set(revs)), "events out of order or repeated"
        assert [v for _, v in seen] == [str(i).encode() for i in range(n)]


async def test_writes_fail_over_and_never_blindly_retry(own_cluster: Cluster) -> None:
    c = own_cluster
    leader = c.wait_leader()
    follower = c.followers(leader)[0]
    order = [follower, leader] + [n for n in c.members if n not in (follower, leader)]
    eps = [f"http://127.0.0.1:{c.members[n].client_port}" for n in order]
    async with AsyncClient(eps, timeout=3, deadline=20) as cl:
        await cl.put("f/a", b"1")
        c.kill(follower)  # connection refused from now on: provably safe to retry elsewhere
        r = await cl.put("f/b", b"2")
        assert (await cl.get("f/b")).mod_revision == r.revision
        assert cl.transport.endpoints.pick() != eps[0]
        c.start(follower)  # back to three, so the leader's death below leaves a quorum
        c.wait_leader(30)

        async def current() -> int:
            try:
                return int((await cl.get("f/counter")).value)
            except KeyNotFound:
                return 0

        counter = 0
        for i in range(30):  # a CAS counter while the leader dies: exact, no double apply
            if i == 10:
                c.kill(leader)
            while True:
                cur = await current()
                try:
                    mod = (await cl.get("f/counter")).mod_revision if cur else 0
                    await cl.put_if_mod_revision("f/counter", str(cur + 1).encode(), mod)
                    break
                except (Indeterminate, CompareFailed):
                    if await current() == cur + 1:  # our unknown-outcome write did apply
                        break
            counter += 1
        assert await current() == counter == 30


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
