"""The client's KV, CAS, txn, lease and cluster calls against a live cluster."""

from __future__ import annotations

import asyncio

import pytest

from raftkv.client import (
    AsyncClient,
    Client,
    Compacted,
    Compare,
    CompareFailed,
    KeyNotFound,
    LeaseNotFound,
    Op,
)
from tests.client.conftest import endpoints
from tests.integration.cluster import Cluster

pytestmark = pytest.mark.timeout(60)


async def test_kv_cas_txn(client: AsyncClient) -> None:
    r = await client.put("kv/a", b"1")
    kv = await client.get("kv/a")
    assert kv.value == b"1" and kv.mod_revision == r.revision and kv.version == 1
    p = await client.put("kv/a", "2", prev_kv=True)
    assert p.prev_kv is not None and p.prev_kv.value == b"1"
    await client.put("kv/b c?", b"\xff\x00")  # a key that needs escaping, a binary value
    assert (await client.get("kv/b c?")).value == b"\xff\x00"
    rng = await client.get_prefix("kv/")
    assert [k.key for k in rng.kvs] == [b"kv/a", b"kv/b c?"] and rng.count == 2
    with pytest.raises(KeyNotFound):
        await client.get("kv/missing")
    with pytest.raises(CompareFailed) as e:
        await client.put_if_absent("kv/a", b"x")
    assert e.value.current is not None and e.value.current.value == b"2"
    cur = await client.get("kv/a")
    await client.put_if_mod_revision("kv/a", b"3", cur.mod_revision)
    await client.put_if_value("kv/a", b"4", b"3")
    with pytest.raises(CompareFailed):
        await client.delete_if_value("kv/a", b"nope")
    t = await (
        client.txn()
        .if_(Compare.value("kv/a") == b"4", Compare.version("kv/a") > 1)
        .then(Op.put("kv/a", b"5"), Op.get("kv/a"))
        .else_(Op.get("kv/a"))
        .commit()
    )
    assert t.succeeded and t.responses[1].kvs[0].value == b"5"
    t = await client.txn().if_(Compare.mod_revision("kv/a") < 2).then(Op.delete("kv/a")).commit()
    assert not t.succeeded
    d = await client.delete("kv/", prefix=True, prev_kv=True)
    assert d.deleted == 2 and {k.key for k in d.prev_kvs} == {b"kv/a", b"kv/b c?"}


async def test_history_and_compaction(client: AsyncClient) -> None:
    r1 = await client.put("hist/k", b"old")
    await client.put("hist/k", b"new")
    assert (await client.get("hist/k", revision=r1.revision)).value == b"old"
    await client.compact(r1.revision + 1)
    with pytest.raises(Compacted):
        await client.get("hist/k", revision=r1.revision)
    with pytest.raises(Compacted) as e:
        async for _ in client.watch("hist/k", start_revision=r1.revision):
            pass
    assert e.value.compact_revision >= r1.revision + 1


async def test_leases(client: AsyncClient) -> None:
    lease = await client.grant(30)
    await client.put("lease/k", b"v", lease=lease.id)
    assert await client.keepalive_once(lease.id) == 30
    info = await client.ttl(lease.id, keys=True)
    assert info.granted_ttl == 30 and info.keys == [b"lease/k"]
    assert lease.id in await client.leases()
    await client.revoke(lease.id)
    with pytest.raises(KeyNotFound):
        await client.get("lease/k")
    with pytest.raises(LeaseNotFound):
        await client.keepalive_once(lease.id)


async def test_lease_helper_reports_loss(client: AsyncClient) -> None:
    lost: list[int] = []
    async with client.lease(3, on_lost=lambda k: lost.append(k.id)) as lease:
        await client.put("lease/helper", b"v", lease=lease.id)
        await asyncio.sleep(4)  # longer than the TTL: kept alive
        assert (await client.get("lease/helper")).lease == lease.id
        await client.revoke(lease.id)  # someone else revokes it
        await asyncio.wait_for(lease.lost.wait(), 5)
    assert lost == [lease.id]


async def test_cluster_calls(client: AsyncClient, cluster: Cluster) -> None:
    members = await client.members()
    assert sorted(m["name"] for m in members) == ["n1", "n2", "n3"]
    for ep in client.endpoints:
        st = await client.status(ep)
        assert st["leader_name"] in ("n1", "n2", "n3")


def test_sync_client(cluster: Cluster) -> None:
    with Client(endpoints(cluster), timeout=3) as c:
        r = c.put("sync/a", b"1")
        assert c.get("sync/a").mod_revision == r.revision
        t = c.txn().if_(Compare.value("sync/a") == b"1").then(Op.put("sync/a", b"2")).commit()
        assert t.succeeded
        seen = []
        for e in c.watch("sync/a", start_revision=r.revision):
            seen.append(e.kv.value)
            if len(seen) == 2:
                break
        assert seen == [b"1", b"2"]
        with c.lease(5) as lease:
            c.put("sync/l", b"v", lease=lease.id)
            assert c.get("sync/l").lease == lease.id
        with pytest.raises(KeyNotFound):
            c.get("sync/l")
