"""One raftkv member: LMDB storage + the Raft core + the asyncio Ready loop.

Every call into the core happens on the event loop thread, so the core needs no lock.
LMDB writes (the Raft log fsync, the state-machine apply) run in a single worker
thread so they never block the loop, and they stay strictly ordered.

Ready handling follows the core's contract: persist -> send -> apply (ONE MvccStore
transaction per Ready) -> resolve waiters -> advance. Proposals carry a random
request_id; whichever node applies the entry locally resolves its own waiter, so a
write sent to a follower completes when the follower applies it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from raftkv import testmode as tm
from raftkv.node import reconfig
from raftkv.node.lessor import Lessor, min_ttl
from raftkv.node.membership import (
    Member,
    MembershipRecord,
    decode_membership,
    encode_membership,
    load_or_bootstrap_members,
    parse_initial_cluster,
    save_members,
)
from raftkv.node.watch import WatchHub
from raftkv.raft import (
    Config,
    EntryType,
    HardState,
    Message,
    ProposalDropped,
    Raft,
    Ready,
    Role,
    SnapshotMeta,
    bootstrap,
)
from raftkv.raft.confchange import apply_conf_change
from raftkv.raft.messages import ConfChange
from raftkv.storage import commands as cmds
from raftkv.storage.env import GiB, open_env
from raftkv.storage.logstore import LogStore
from raftkv.storage.mvcc import MvccStore
from raftkv.storage.results import ApplyResult, LeaseGrantResponse, LeaseRevokeResponse
from raftkv.storage.snapshot import SnapshotError
from raftkv.transport.tcp import PeerAddr, PeerTransport

log = structlog.get_logger("raftkv.node")
T = TypeVar("T")


class UnavailableError(Exception):
    """No leader, or the request did not commit in time: the client should retry (503)."""


class NotLeaderError(UnavailableError):
    """The operation must run on the leader and the leader is unknown."""


@dataclass
class NodeConfig:
    name: str
    data_dir: Path
    client_url: str
    initial_cluster: str | None = None
    peer_url: str | None = None  # checked against this member's entry when given
    tick_seconds: float = 0.1
    election_tick: int = 10
    heartbeat_tick: int = 1
    request_timeout: float = 5.0
    snapshot_count: int = 10_000  # take a snapshot every N applied entries...
    snapshot_keep: int = 5_000  # ...and keep this many entries behind it for slow followers
    map_size: int = 4 * GiB
    quota_bytes: int = 2 * GiB


class Node:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.members, fresh = load_or_bootstrap_members(cfg.data_dir, cfg.initial_cluster)
        me = [m for m in self.members if m.name == cfg.name]
        if not me:
            raise ValueError(f"--name {cfg.name!r} is not in the cluster members")
        self.me: Member = me[0]
        if cfg.peer_url and cfg.peer_url.rstrip("/") != self.me.peer_url.rstrip("/"):
            raise ValueError(
                f"--peer-url {cfg.peer_url} differs from {self.me.peer_url}, the peer URL "
                f"of {cfg.name} in the cluster membership"
            )
        self.id = self.me.id
        testing = tm.settings()  # all defaults (inert) unless RAFTKV_TEST_MODE=1
        self.env = open_env(cfg.data_dir / "db", cfg.map_size, sync=not testing.lazy_fsync)
        self.logstore = LogStore(self.env)
        self.mvcc = MvccStore(
            self.env,
            quota_bytes=cfg.quota_bytes,
            **({"dedup_capacity": 0} if tm.mutation("no-dedup") else {}),
            **(
                {"revision_meta": cfg.data_dir / "revision.meta"}
                if tm.mutation("revision-from-unsynced-meta")
                else {}
            ),
        )
        if tm.mutation("non-atomic-apply"):
            self.mvcc.split_applied = lambda: tm.hit("between_state_and_applied")
        # Lazy-fsync mode only: what the last forced fsync made durable (POST /debug/fsync).
        self.last_fsync: dict[str, Any] | None = None
        if fresh:
            entries, hs, _ = bootstrap([m.id for m in self.members])
            self.logstore.save(hs, entries)
            save_members(cfg.data_dir, self.members)
        elif cfg.initial_cluster and parse_initial_cluster(cfg.initial_cluster) != self.members:
            log.warning(
                "--initial-cluster differs from the membership in the data dir; ignoring it",
                node=cfg.name,
            )
        # Replay from the last snapshot, not from the state machine's applied index:
        # the core learns membership (conf-change entries) only by applying them, and
        # the log store's initial conf state is the one of its last snapshot. Entries
        # the MvccStore already has are skipped by it, so the replay is idempotent.
        applied = self.logstore.snapshot().meta.index
        # The term and vote on disk at start: the no-persist-term-vote mutation keeps them.
        self._boot_hard_state = self.logstore.hard_state()
        self.raft = Raft(
            Config(
                id=self.id,
                election_tick=cfg.election_tick,
                heartbeat_tick=cfg.heartbeat_tick,
                applied=applied,
                bugs=testing.core_bugs,
            ),
            self.logstore,
            random.Random(int.from_bytes(os.urandom(8), "big")),
        )
        self.conf_state = self.logstore.conf_state()
        # The highest member id ever assigned (ids are never reused): from the state
        # machine's membership record when there is one.
        raw_membership = self.mvcc.conf_state()
        self.max_member_id = max(m.id for m in self.members)
        if raw_membership:
            self.max_member_id = max(self.max_member_id, decode_membership(raw_membership).max_id)
        self.client_urls: dict[int, str] = {self.id: cfg.client_url}
        self.lessor = Lessor(
            min_ttl(cfg.election_tick, cfg.tick_seconds),
            clock=tm.monotonic if testing.enabled else time.monotonic,
            keep_deadlines=tm.mutation("lease-no-ttl-refresh"),
        )
        self.hub = WatchHub()
        self.role = Role.FOLLOWER
        self.leader = 0
        self.snap_index = self.logstore.snapshot().meta.index
        self._io = ThreadPoolExecutor(1, thread_name_prefix=f"lmdb-{cfg.name}")
        self._wake = asyncio.Event()
        self._deferred_hard_state: HardState | None = None
        # Waiters by request id: a client retrying with its own request id may have two
        # attempts pending here at once, and the first apply answers both.
        self._proposals: dict[bytes, list[asyncio.Future[ApplyResult]]] = {}
        self._read_pending: list[asyncio.Future[None]] = []
        self._read_batches: dict[bytes, tuple[float, list[asyncio.Future[None]]]] = {}
        self._read_ctx = itertools.count(1)
        self._applied_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self.fatal: BaseException | None = None
        # Set when a conf change removing this member applies: it must stop serving.
        self.removed = False
        self.on_removed: Callable[[], None] | None = None
        self.started = time.monotonic()
        self.metrics: dict[str, int] = {
            "proposals_total": 0,
            "proposals_failed_total": 0,
            "applied_entries_total": 0,
            "reads_linearizable_total": 0,
            "snapshots_taken_total": 0,
            "snapshots_received_total": 0,
            "leader_changes_total": 0,
        }
        self._log = log.bind(node=cfg.name, id=self.id)
        host, port = self.me.peer_host_port
        self.transport = PeerTransport(
            self.id,
            {"id": self.id, "name": cfg.name, "client_url": cfg.client_url},
            (host, port),
            [PeerAddr(m.id, *m.peer_host_port) for m in self.members],
            self._on_messages,
            self._on_hello,
            self._snapshot_source,
            self._on_snapshot,
            self._report_snapshot,
            cfg.data_dir / "snap-spool",
        )

    @property
    def log(self) -> Any:
        """The node's logger with the current term and role bound (cheap: events are rare)."""
        return self._log.bind(term=self.raft.term, role=self.role.name.lower())

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        await self.transport.start()
        self._tasks = [
            asyncio.create_task(self._ticker(), name="ticker"),
            asyncio.create_task(self._ready_loop(), name="ready"),
            asyncio.create_task(self._lease_loop(), name="leases"),
        ]
        self.log.info(
            "node started",
            applied=self.mvcc.applied_index(),
            revision=self.mvcc.current_revision(),
            snapshot_index=self.snap_index,
        )

    async def stop(self, transfer: bool = True) -> None:
        """Graceful stop: hand leadership to the most caught-up peer, then close LMDB."""
        if self._stopped:
            return
        if transfer and self.role == Role.LEADER and len(self.members) > 1:
            await self._transfer_leadership()
        self._stopped = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        await self.transport.stop()
        self.hub.close()
        for futs in self._proposals.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(UnavailableError("node is shutting down"))
        self._io.shutdown(wait=True)
        self.env.close()
        self.log.info("node stopped")

    async def _transfer_leadership(self) -> None:
        best = [
            (pr.match, nid)
            for nid, pr in self.raft.prs.items()
            if nid != self.id and self.transport.connected(nid)
        ]
        if not best:
            return
        _, target = max(best)
        self.log.info("transferring leadership", to=target)
        self.raft.transfer_leadership(target)
        self._wake.set()
        deadline = time.monotonic() + 3 * self.cfg.election_tick * self.cfg.tick_seconds
        while time.monotonic() < deadline and self.raft.lead in (self.id, 0):
            await asyncio.sleep(0.02)

    async def _run_io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    # --- inputs -----------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            # clock_rate() is 1.0 outside test mode; a skewed node ticks faster/slower.
            await asyncio.sleep(self.cfg.tick_seconds / tm.clock_rate())
            self.raft.tick()
            self._expire_reads()
            self._wake.set()

    def _on_messages(self, msgs: list[Message]) -> None:
        if self._stopped:
            return
        for m in msgs:
            if m.to == self.id:
                self.raft.step(m)
        self._wake.set()

    def _on_hello(self, info: dict[str, Any]) -> None:
        try:
            self.client_urls[int(info["id"])] = str(info["client_url"])
        except (KeyError, TypeError, ValueError):
            self.log.warning("bad peer hello", info=repr(info)[:200])

    def _report_snapshot(self, to: int, failed: bool) -> None:
        if not self._stopped:
            self.raft.report_snapshot(to, failed)
            self._wake.set()

    def _snapshot_source(self) -> Any:
        return self.mvcc.snapshot_stream().chunks

    async def _on_snapshot(self, m: Message, path: Path) -> None:
        """Install the leader's state machine, then let the core accept the snapshot."""
        if self._stopped or m.snapshot is None:
            return
        if m.snapshot.meta.index > self.mvcc.applied_index():
            await tm.hit_async("before_snapshot_install")
            try:
                await self._run_io(self._restore_from_file, path)
            except SnapshotError as e:
                self.log.warning("snapshot rejected", error=str(e))
                return
            self.metrics["snapshots_received_total"] += 1
            self.log.info("snapshot restored", applied=self.mvcc.applied_index())
            raw = self.mvcc.conf_state()
            if raw:
                reconfig.adopt_membership(self, decode_membership(raw))
        self._on_messages([m])

    def _restore_from_file(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.mvcc.restore(iter(lambda: f.read(1 << 20), b""))

    # --- client API -------------------------------------------------------------------
    @property
    def leader_client_url(self) -> str | None:
        return self.client_urls.get(self.leader) if self.leader else None

    async def propose(self, cmd: Any, request_id: bytes | None = None) -> ApplyResult:
        """Replicate and apply one command; the ApplyResult from the local apply.

        `request_id` is the client's own id for a request it may retry (on any node):
        the state machine's de-duplication table applies a request id once and answers
        a retry with the first outcome. Without one, every call is a new request.
        Raises UnavailableError when there is no leader or it does not apply in time
        (the outcome is then unknown, as with etcd's "request timed out").
        """
        if self.fatal is not None:
            raise UnavailableError("node stopped applying") from self.fatal
        rid = request_id or os.urandom(16)
        cmd = dataclasses.replace(cmd, request_id=rid)
        data = cmd.encode()
        fut: asyncio.Future[ApplyResult] = asyncio.get_running_loop().create_future()
        self._proposals.setdefault(rid, []).append(fut)
        self.metrics["proposals_total"] += 1
        try:
            try:
                self.raft.propose(data)
            except ProposalDropped as e:
                raise UnavailableError("no leader") from e
            self._wake.set()
            return await asyncio.wait_for(fut, self.cfg.request_timeout)
        except TimeoutError as e:
            self.metrics["proposals_failed_total"] += 1
            raise UnavailableError("request timed out") from e
        except UnavailableError:
            self.metrics["proposals_failed_total"] += 1
            raise
        finally:
            waiters = self._proposals.get(rid, [])
            if fut in waiters:
                waiters.remove(fut)
            if not waiters:
                self._proposals.pop(rid, None)

    async def read_barrier(self) -> None:
        """Wait until a linearizable read may be served from the local state machine.

        Concurrent callers share one ReadIndex round (one context per batch).
        """
        if self.fatal is not None:
            raise UnavailableError("node stopped applying") from self.fatal
        if tm.mutation("follower-local-reads") and self.role != Role.LEADER:
            # MUTATION: serve a "linearizable" read from possibly stale local state.
            self.metrics["reads_linearizable_total"] += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._read_pending:
            asyncio.get_running_loop().call_soon(self._flush_reads)
        self._read_pending.append(fut)
        self.metrics["reads_linearizable_total"] += 1
        try:
            await asyncio.wait_for(fut, self.cfg.request_timeout)
        except TimeoutError as e:
            raise UnavailableError("read index timed out") from e

    def _flush_reads(self) -> None:
        batch, self._read_pending = self._read_pending, []
        if not batch:
            return
        ctx = next(self._read_ctx).to_bytes(8, "big") + self.id.to_bytes(8, "big")
        try:
            self.raft.read_index(ctx)
        except ProposalDropped:
            for f in batch:
                if not f.done():
                    f.set_exception(UnavailableError("no leader"))
            return
        self._read_batches[ctx] = (time.monotonic(), batch)
        self._wake.set()

    def _expire_reads(self) -> None:
        """Forget ReadIndex rounds whose request or answer was lost (waiters time out)."""
        limit = time.monotonic() - self.cfg.request_timeout
        for ctx in [c for c, (t, _) in self._read_batches.items() if t < limit]:
            del self._read_batches[ctx]

    async def wait_applied(self, index: int) -> None:
        if self.mvcc.applied_index() >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((index, fut))
        await fut

    # --- Ready loop -------------------------------------------------------------------
    async def _ready_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.raft.has_ready():
                    await self._handle_ready(self.raft.ready())
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            # Fail-stop: never skip an entry or ack state that is not durable.
            self.fatal = e
            self.log.exception("ready loop failed: node stops serving writes")

    async def _handle_ready(self, rd: Ready) -> None:
        ss = rd.soft_state
        if ss.lead != self.leader or ss.role != self.role:
            self._on_soft_state(ss.lead, ss.role)
        # Appends and heartbeats go out before our own fsync (contract step 0).
        self.transport.send(rd.early_messages)
        hs = rd.hard_state
        if hs is not None and not rd.must_sync and not rd.entries and rd.snapshot is None:
            # Only the commit index moved: it is relearned from the leader after a
            # restart, so it need not cost an LMDB commit (two fsyncs) of its own.
            # It rides along with the next write that has to reach the disk anyway.
            self._deferred_hard_state = hs
            hs = None
        sent_early = False
        if rd.snapshot is not None or rd.entries or hs is not None:
            hs = hs or self._deferred_hard_state
            self._deferred_hard_state = None
            if tm.mutation("ack-before-fsync"):
                # MUTATION: append acks and votes leave before the state is persisted.
                self.transport.send(rd.messages)
                sent_early = True
                await tm.hit_async("after_send_before_persist")
            if hs is not None and tm.mutation("no-persist-term-vote"):
                # MUTATION: the term and vote on disk never move past their start values.
                boot = self._boot_hard_state
                hs = dataclasses.replace(hs, term=boot.term, vote=boot.vote)
            await self._run_io(self.logstore.save, hs, rd.entries, rd.snapshot)
            await tm.hit_async("after_persist_before_send")
        if rd.snapshot is not None:
            self.snap_index = rd.snapshot.meta.index
            self.conf_state = rd.snapshot.meta.conf_state
        if not sent_early:
            self.transport.send(rd.messages)
        if rd.committed_entries:
            await self._apply(rd)
        for rs in rd.read_states:
            entry = self._read_batches.pop(rs.context, None)
            if entry is None:
                continue
            for f in entry[1]:
                self._resolve_after(rs.index, f)
        self.raft.advance(rd)
        self._maybe_snapshot()

    def _resolve_after(self, index: int, f: asyncio.Future[None]) -> None:
        if f.done():
            return
        if self.mvcc.applied_index() >= index:
            f.set_result(None)
        else:
            self._applied_waiters.append((index, f))

    def _on_soft_state(self, lead: int, role: Role) -> None:
        was_leader = self.role == Role.LEADER
        if lead != self.leader:
            self.metrics["leader_changes_total"] += 1
        self.leader, self.role = lead, role
        self.log.info("role changed", leader=lead)
        if role == Role.LEADER and not was_leader:
            self.lessor.promote(self.mvcc.leases())
        elif role != Role.LEADER and was_leader:
            self.lessor.demote()

    async def _apply(self, rd: Ready) -> None:
        batch: list[tuple[int, bytes]] = []
        cs_changed = False
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                cc = ConfChange.decode(e.data)
                self.conf_state = apply_conf_change(self.conf_state, cc)
                reconfig.on_conf_change_applied(self, cc)
                cs_changed = True
                batch.append((e.index, b""))
            else:
                batch.append((e.index, e.data))
        raw_cs = None
        if cs_changed:
            self.max_member_id = max(
                self.max_member_id, *self.conf_state.all_nodes(), *(m.id for m in self.members)
            )
            raw_cs = encode_membership(
                MembershipRecord(
                    self.conf_state, tuple(self.members), dict(self.client_urls), self.max_member_id
                )
            )
        results = await self._run_io(self.mvcc.apply, batch, raw_cs)
        await tm.hit_async("after_apply_before_ack")
        self.metrics["applied_entries_total"] += len(batch)
        leader = self.role == Role.LEADER
        for res, (_, data) in zip(results, batch, strict=True):
            if res.skipped:
                continue
            if res.events:
                self.hub.publish(res.events)
            if isinstance(res.response, LeaseGrantResponse):
                self.lessor.granted(res.response.id, res.response.ttl, leader)
            elif isinstance(res.response, LeaseRevokeResponse):
                c = cmds.decode(data)
                if isinstance(c, cmds.LeaseRevoke):
                    self.lessor.revoked(c.id)
            if res.request_id is not None:
                for fut in self._proposals.get(res.request_id, ()):
                    if not fut.done():
                        fut.set_result(res)
        applied = self.mvcc.applied_index()
        if self._applied_waiters:
            keep = []
            for idx, f in self._applied_waiters:
                if f.done():
                    continue
                if idx <= applied:
                    f.set_result(None)
                else:
                    keep.append((idx, f))
            self._applied_waiters = keep

    def _maybe_snapshot(self) -> None:
        applied = self.mvcc.applied_index()
        if applied - self.snap_index < self.cfg.snapshot_count:
            return
        self.snap_index = applied
        term = self.logstore.term(applied)
        meta = SnapshotMeta(applied, term, self.conf_state)
        compact_to = applied - self.cfg.snapshot_keep

        def work() -> None:
            self.logstore.set_snapshot_meta(meta)
            if compact_to > self.logstore.first_index():
                self.logstore.compact(compact_to)

        self.metrics["snapshots_taken_total"] += 1
        self.log.info("snapshot taken", index=applied, compact_to=compact_to)
        task = asyncio.ensure_future(self._run_io(work))
        task.add_done_callback(lambda t: t.exception() and self.log.error("snapshot failed"))

    # --- leases -----------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if self.role != Role.LEADER:
                continue
            for lid in self.lessor.expired():
                self.log.info("lease expired", lease=lid)
                t = asyncio.create_task(self._revoke_quietly(lid))
                self._background.add(t)
                t.add_done_callback(self._background.discard)

    async def _revoke_quietly(self, lid: int) -> None:
        with contextlib.suppress(UnavailableError):  # retried by the lease loop after 3 s
            await self.propose(cmds.LeaseRevoke(lid))

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        hs = self.raft.hard_state
        return {
            "name": self.cfg.name,
            "id": self.id,
            "leader": self.leader,
            "leader_name": next((m.name for m in self.members if m.id == self.leader), None),
            "role": self.role.name.lower(),
            "term": hs.term,
            "commit": hs.commit,
            "applied": self.mvcc.applied_index(),
            "revision": self.mvcc.current_revision(),
            "compact_revision": self.mvcc.compact_revision(),
            "db_size": self.mvcc.db_size(),
            "raft_first_index": self.logstore.first_index(),
            "raft_last_index": self.logstore.last_index(),
            "snapshot_index": self.snap_index,
        }
