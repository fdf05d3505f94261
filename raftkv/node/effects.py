"""Executing the Ready driver's effects with asyncio, sockets and LMDB (the Node's half
that does I/O; the ordering itself is decided by driver.py).

Local storage failures are handled here, never by a request: a full disk (ENOSPC,
MDB_MAP_FULL) pauses persisting and applying — the same write is retried until space
is back, writes sent to this member are refused meanwhile, reads go on — and damaged
data (MDB_CORRUPTED, a bad entry checksum) stops the member.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from raftkv import testmode as tm
from raftkv.errors import NoSpace
from raftkv.metrics import SLOW_APPLY
from raftkv.node import reconfig
from raftkv.node.driver import (
    Apply,
    Effect,
    Hook,
    Persist,
    Resolve,
    RoleChanged,
    Send,
    TakeSnapshot,
)
from raftkv.node.membership import encode_membership
from raftkv.raft import EntryType, Role, SnapshotMeta
from raftkv.raft.messages import ConfChange
from raftkv.storage import commands as cmds
from raftkv.storage.errors import RUNBOOK, is_corruption, is_full
from raftkv.storage.results import ApplyResult, LeaseGrantResponse, LeaseRevokeResponse

if TYPE_CHECKING:
    from raftkv.node.node import Node

T = TypeVar("T")


class EffectRunner:
    """Mixed into Node: the Ready loop and one method per effect."""

    async def _ready_loop(self: Node) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.raft.has_ready():
                    gen = self.driver.process(self.raft.ready())
                    outcome: Any = None
                    while True:
                        try:
                            effect = gen.send(outcome)
                        except StopIteration:
                            break
                        outcome = await self._execute(effect)
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._fail(e)

    def _fail(self: Node, e: BaseException) -> None:
        """Fail-stop: never skip an entry or ack state that is not durable."""
        self.fatal = e
        if is_corruption(e):
            self.log.error("data corruption detected: stopping", error=str(e), runbook=RUNBOOK)
        else:
            self.log.exception("ready loop failed: node stops serving writes", exc_info=e)
        if self.on_fatal is not None:
            self.on_fatal(e)

    async def _execute(self: Node, effect: Effect) -> Any:
        if isinstance(effect, Send):
            self.transport.send(effect.messages)
        elif isinstance(effect, Persist):
            if self.trace is not None:
                self.trace.entries((e.index for e in effect.entries), "appended")
            t0 = time.monotonic()
            await self._durably(
                self.logstore.save, effect.hard_state, effect.entries, effect.snapshot
            )
            self.prom.wal_fsync.observe(time.monotonic() - t0)
            if self.trace is not None:
                self.trace.entries((e.index for e in effect.entries), "persisted")
        elif isinstance(effect, Hook):
            await tm.hit_async(effect.name)
        elif isinstance(effect, Apply):
            return await self._apply(effect)
        elif isinstance(effect, Resolve):
            for fut, result in effect.proposals:
                if not fut.done():  # type: ignore[attr-defined]
                    fut.set_result(result)  # type: ignore[attr-defined]
            for fut in effect.reads:
                if not fut.done():  # type: ignore[attr-defined]
                    fut.set_result(None)  # type: ignore[attr-defined]
        elif isinstance(effect, RoleChanged):
            self._on_role(effect)
        elif isinstance(effect, TakeSnapshot):
            self._take_snapshot(effect)
        return None

    async def _durably(self: Node, fn: Callable[..., T], *args: Any) -> T:
        """Run a storage write; on a full disk retry (with the member refusing writes
        meanwhile) until it succeeds. Nothing of a failed write was committed."""
        delay = 0.1
        while True:
            try:
                result = await self.run_io(fn, *args)
            except Exception as e:
                if not is_full(e) or self._stopped:
                    raise
                if self.storage_trouble is None:
                    self.log.error(
                        "disk full: writes are refused until space is freed",
                        error=str(e),
                        hint="free space in the data dir's file system, or compact and "
                        "defragment; the member resumes by itself",
                    )
                self.storage_trouble = str(e)
                self.metrics["storage_retries_total"] += 1
                await self.run_io(self._reopen_after_failure)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self.storage_trouble is not None:
                self.log.info("storage writable again: resuming")
                self.storage_trouble = None
            return result

    def _reopen_after_failure(self: Node) -> None:
        """LMDB refuses every transaction after a failed meta-page write until the
        environment is reopened: probe each with an empty write, reopen if needed."""
        for env, reopen in (
            (self.logstore.env, self.logstore.reopen),
            (self.mvcc.env, self.mvcc.reopen),
        ):
            try:
                with env.begin(write=True):
                    pass
            except Exception:
                reopen()

    async def _apply(self: Node, effect: Apply) -> list[tuple[bytes | None, ApplyResult]]:
        batch: list[tuple[int, bytes]] = []
        record = None
        applied = self.mvcc.applied_index()
        for e in effect.entries:
            if e.type == EntryType.CONF_CHANGE:
                if e.index > applied:  # entries at or below are in the loaded record
                    reconfig.on_conf_change_applied(self, ConfChange.decode(e.data))
                    record = encode_membership(self.membership.record())
                batch.append((e.index, b""))
            else:
                batch.append((e.index, e.data))
        trace = self.trace
        if trace is not None:
            trace.entries((i for i, _ in batch), "committed")  # if no ack marked it first
            trace.entries((i for i, _ in batch), "apply_start")
        t0 = time.monotonic()
        results = await self._durably(self.mvcc.apply, batch, record)
        took = time.monotonic() - t0
        self.prom.backend_commit.observe(took)
        if took > SLOW_APPLY:
            self.prom.slow_applies.inc()
            self.log.warning(
                "apply request took too long",  # etcd's wording, for the same grep
                took_ms=round(took * 1000, 1),
                expected_ms=SLOW_APPLY * 1000,
                entries=len(batch),
            )
        if trace is not None:
            trace.entries((i for i, _ in batch), "applied")
            for res, (index, _) in zip(results, batch, strict=True):
                if res.request_id is not None:
                    trace.link(res.request_id, index)
        self.metrics["applied_entries_total"] += len(batch)
        leader = self.is_leader
        nospace = False
        out: list[tuple[bytes | None, ApplyResult]] = []
        for res, (_, data) in zip(results, batch, strict=True):
            out.append((res.request_id, res))
            if res.skipped:
                continue
            if res.events:
                self.hub.publish(res.events)
            resp = res.response
            if isinstance(resp, LeaseGrantResponse):
                self.lessor.granted(resp.id, resp.ttl, leader)
            elif isinstance(resp, LeaseRevokeResponse):
                c = cmds.decode(data)
                if isinstance(c, cmds.LeaseRevoke):
                    self.lessor.revoked(c.id)
            elif isinstance(res.error, NoSpace):
                nospace = True
        if nospace and leader:
            reconfig.raise_nospace_alarm(self)
        return out

    def _on_role(self: Node, rc: RoleChanged) -> None:
        was_leader = self.role == Role.LEADER
        if rc.lead != self.leader:
            self.metrics["leader_changes_total"] += 1
        self.leader, self.role = rc.lead, rc.role
        self.log.info("role changed", leader=rc.lead)
        waiters, self._role_waiters = self._role_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        if rc.role == Role.LEADER and not was_leader:
            self.lessor.promote(self.mvcc.leases())
        elif rc.role != Role.LEADER and was_leader:
            self.lessor.demote()

    def _take_snapshot(self: Node, snap: TakeSnapshot) -> None:
        meta = SnapshotMeta(snap.index, snap.term, snap.conf_state)

        def work() -> None:
            self.mvcc.sync()  # the state at snap.index must outlive the entries dropped
            self.logstore.set_snapshot_meta(meta)
            if snap.compact_to > self.logstore.first_index():
                self.logstore.compact(snap.compact_to)

        self.metrics["snapshots_taken_total"] += 1
        self.log.info("snapshot taken", index=snap.index, compact_to=snap.compact_to)
        task = self.spawn(self.run_io(work))
        task.add_done_callback(
            lambda t: t.cancelled() or t.exception() is None or self.log.error("snapshot failed")
        )
