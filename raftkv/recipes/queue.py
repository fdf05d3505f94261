"""The fair-queue protocol shared by the lock and the election (etcd's concurrency).

Each contender owns `<prefix><lease id hex>`, created only if absent and bound to its
lease; contenders are served in create-revision order, and each waits only for the
deletion of its immediate predecessor, so a release wakes one waiter, not all of them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raftkv.client.errors import Indeterminate
from raftkv.client.models import KeyValue, RangeResult
from raftkv.client.txn import Compare, Op

if TYPE_CHECKING:
    from raftkv.client.aio import AsyncClient


@dataclass
class Slot:
    key: str
    create_revision: int
    revision: int  # the revision the queue below was read at
    queue: list[KeyValue]


async def enqueue(client: AsyncClient, prefix: str, lease_id: int, value: bytes) -> Slot:
    """Create our key if absent (else keep it) and read the queue in the same txn.

    Retrying after `Indeterminate` is safe here: the txn is create-if-absent on a key
    only this lease owns, so a second run finds the first one's key and keeps it.
    """
    key = f"{prefix}{lease_id:x}"
    for attempt in range(5):
        try:
            r = await (
                client.txn()
                .if_(Compare.create_revision(key) == 0)
                .then(Op.put(key, value, lease=lease_id), Op.get(prefix, prefix=True))
                .else_(Op.get(key), Op.get(prefix, prefix=True))
                .commit()
            )
            break
        except Indeterminate:
            if attempt == 4:
                raise
    queue: RangeResult = r.responses[1]
    if r.succeeded:
        mine = r.revision
    else:
        mine = r.responses[0].kvs[0].create_revision
    return Slot(key, mine, r.revision, sorted(queue.kvs, key=lambda kv: kv.create_revision))


async def wait_turn(client: AsyncClient, prefix: str, slot: Slot) -> None:
    """Return once no key created before ours remains under the prefix."""
    queue, revision = slot.queue, slot.revision
    while True:
        before = [kv for kv in queue if kv.create_revision < slot.create_revision]
        if not before:
            return
        pred = before[-1]
        watch = client.watch(pred.key, start_revision=revision + 1)
        async with contextlib.aclosing(watch) as events:  # type: ignore[type-var]
            async for e in events:
                if e.type == "DELETE":
                    break
        r = await client.get_prefix(prefix)
        queue = sorted(r.kvs, key=lambda kv: kv.create_revision)
        revision = r.revision
