"""One raftkv member: runs the Ready driver's effects with asyncio, sockets and LMDB.

The ordering of persist, send, apply and resolve is decided by `node/driver.py`, which
the simulator runs too; this class only executes what the driver yields. Every call
into the core happens on the event loop thread, so the core needs no lock; LMDB
writes run on one dedicated thread so they never block the loop and stay ordered.

Local storage failures are handled here, never by a request: a full disk (ENOSPC,
MDB_MAP_FULL) pauses persisting and applying — the same Ready is retried until space
is back, writes sent to this member are refused with NoSpace meanwhile, reads go on —
and damaged data (MDB_CORRUPTED, a bad entry checksum) stops the member.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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
from raftkv.errors import Unavailable, Why
from raftkv.metrics import NodeMetrics, pong
from raftkv.node import reconfig, trace
from raftkv.node.driver import (
    Driver,
    DriverBugs,
    DriverConfig,
)
from raftkv.node.effects import EffectRunner
from raftkv.node.lessor import Lessor, min_ttl
from raftkv.node.membership import (
    Member,
    Membership,
    decode_membership,
    load_members_file,
    parse_initial_cluster,
    save_members_file,
)
from raftkv.node.watch import WatchHub
from raftkv.raft import (
    Config,
    Message,
    ProposalDropped,
    Raft,
    Role,
    bootstrap,
)
from raftkv.raft.messages import ConfChange
from raftkv.reqid import new_request_id
from raftkv.storage import commands as cmds
from raftkv.storage.datadir import DataDir
from raftkv.storage.mvcc import DEFAULT_QUOTA
from raftkv.storage.results import ApplyResult
from raftkv.storage.snapshot import SnapshotError
from raftkv.transport.tcp import PeerAddr, PeerTransport

log = structlog.get_logger("raftkv.node")
T = TypeVar("T")

CORRUPTION_EXIT_CODE = 3


@dataclass
class NodeConfig:
    name: str
    data_dir: Path
    client_url: str  # advertised to clients and peers
    initial_cluster: str | None = None
    peer_url: str | None = None  # checked against this member's entry when given
    listen_peer: tuple[str, int] | None = None  # where to listen (default: the peer URL)
    tick_seconds: float = 0.1
    election_tick: int = 10
    heartbeat_tick: int = 1
    request_timeout: float = 5.0
    snapshot_count: int = 10_000
    snapshot_keep: int = 5_000
    snapshot_bytes: int = 256 << 20
    quota_bytes: int = DEFAULT_QUOTA
    verify_on_start: bool = True


class Node(EffectRunner):
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        testing = tm.settings()  # all defaults (inert) unless RAFTKV_TEST_MODE=1
        self.datadir = DataDir(cfg.data_dir)
        members = load_members_file(cfg.data_dir)
        # A new cluster's member bootstraps its log from --initial-cluster; a member that
        # joins an existing cluster has a members file (written by the join) and must
        # start with an empty log that the leader fills, never with entries of its own.
        joining = members is not None
        if members is None:
            if not cfg.initial_cluster:
                raise ValueError(f"{cfg.data_dir} is empty: --initial-cluster is required")
            members = parse_initial_cluster(cfg.initial_cluster)
        me = next((m for m in members if m.name == cfg.name), None)
        if me is None:
            raise ValueError(f"--name {cfg.name!r} is not in the cluster members")
        stores = self.datadir.open(
            quota_bytes=cfg.quota_bytes,
            sync=not testing.lazy_fsync,
            verify=cfg.verify_on_start,
            **({"dedup_capacity": 0} if tm.mutation("no-dedup") else {}),
            **(
                {"revision_meta": cfg.data_dir / "revision.meta"}
                if tm.mutation("revision-from-unsynced-meta")
                else {}
            ),
        )
        self.logstore, self.mvcc = stores.log, stores.state
        if tm.mutation("non-atomic-apply"):
            self.mvcc.split_applied = lambda: tm.hit("between_state_and_applied")
        self.id = me.id
        raw = self.mvcc.conf_state()
        self.membership = Membership(me.id, {m.id: m for m in members})
        if raw:
            self.membership.adopt(decode_membership(raw))
        me = self.membership.get(self.id) or me
        if cfg.peer_url and cfg.peer_url.rstrip("/") != me.peer_url.rstrip("/"):
            raise ValueError(
                f"--peer-url {cfg.peer_url} differs from {me.peer_url}, the peer URL "
                f"of {cfg.name} in the cluster membership"
            )
        if not joining and self.logstore.last_index() == 0:
            entries, hs, _ = bootstrap(sorted(m.id for m in members))
            self.logstore.save(hs, entries)
            save_members_file(cfg.data_dir, members)
        elif cfg.initial_cluster and parse_initial_cluster(cfg.initial_cluster) != members:
            log.warning("--initial-cluster differs from the data dir; ignoring it", node=cfg.name)
        # Lazy-fsync mode only: what the last forced fsync made durable (POST /debug/fsync).
        self.last_fsync: dict[str, Any] | None = None
        snapshot_index = self.logstore.snapshot().meta.index
        boot_hs = self.logstore.hard_state()
        # Replay from the last snapshot: the core learns membership only by applying
        # conf changes; entries the state machine already has are skipped by it.
        self.raft = Raft(
            Config(
                id=self.id,
                election_tick=cfg.election_tick,
                heartbeat_tick=cfg.heartbeat_tick,
                applied=snapshot_index,
                bugs=testing.core_bugs,
            ),
            self.logstore,
            random.Random(int.from_bytes(os.urandom(8), "big")),
        )
        bugs = DriverBugs(
            send_before_persist=tm.mutation("ack-before-fsync"),
            keep_boot_term_vote=boot_hs if tm.mutation("no-persist-term-vote") else None,
        )
        self.driver = Driver(
            self.raft,
            DriverConfig(
                snapshot_count=cfg.snapshot_count,
                snapshot_bytes=cfg.snapshot_bytes,
                snapshot_keep=cfg.snapshot_keep,
                read_expiry_ticks=max(10, int(cfg.request_timeout / cfg.tick_seconds)),
                bugs=bugs,
            ),
            applied=self.mvcc.applied_index(),
            snapshot_index=snapshot_index,
            node_id=self.id,
        )
        self.lessor = Lessor(
            min_ttl(cfg.election_tick, cfg.tick_seconds),
            clock=tm.monotonic if testing.enabled else time.monotonic,
            keep_deadlines=tm.mutation("lease-no-ttl-refresh"),
        )
        self.hub = WatchHub()
        self.role = Role.FOLLOWER
        self.leader = 0
        self._io = ThreadPoolExecutor(1, thread_name_prefix=f"lmdb-{cfg.name}")
        self._wake = asyncio.Event()
        self.trace = trace.from_env()  # None unless RAFTKV_TRACE=1 (make bench-trace)
        self._tasks: list[asyncio.Task[Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self.fatal: BaseException | None = None
        self.storage_trouble: str | None = None  # why persisting/applying is paused
        self.on_removed: Callable[[], None] | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self._role_waiters: list[asyncio.Future[None]] = []
        self.mvcc.on_corruption = self._fail
        self.started = time.monotonic()
        self.prom = NodeMetrics()  # histograms; the state is read at scrape (metrics.py)
        self.hub.on_delivery = self.prom.watch_lag.observe
        self.metrics: dict[str, int] = {
            "proposals_total": 0,
            "proposals_failed_total": 0,
            "applied_entries_total": 0,
            "reads_linearizable_total": 0,
            "snapshots_taken_total": 0,
            "snapshots_received_total": 0,
            "leader_changes_total": 0,
            "storage_retries_total": 0,
        }
        self._log = log.bind(node=cfg.name, id=self.id)
        listen = cfg.listen_peer or me.peer_host_port
        self.transport = PeerTransport(
            self.id,
            {"id": self.id, "name": cfg.name, "client_url": cfg.client_url},
            listen,
            [PeerAddr(m.id, *m.peer_host_port) for m in self.membership.sorted()],
            self._on_messages,
            lambda info: None,
            self._snapshot_source,
            self._on_snapshot,
            self._report_snapshot,
            self.datadir.spool,
        )
        self.transport.rpc.register("ping", pong)  # peer round-trip probes (metrics.py)

    @property
    def log(self) -> Any:
        """The node's logger with the current term and role bound (cheap: events are rare)."""
        return self._log.bind(term=self.raft.term, role=self.role.name.lower())

    @property
    def term(self) -> int:
        return self.raft.term

    @property
    def is_leader(self) -> bool:
        return self.role == Role.LEADER

    @property
    def members(self) -> list[Member]:
        return self.membership.sorted()

    @property
    def removed(self) -> bool:
        return self.membership.removed

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        await self.transport.start()
        self._tasks = [
            asyncio.create_task(self._ticker(), name="ticker"),
            asyncio.create_task(self._ready_loop(), name="ready"),
            asyncio.create_task(self._lease_loop(), name="leases"),
            asyncio.create_task(reconfig.publish_attributes(self), name="publish"),
            asyncio.create_task(self.prom.probe_peers(self), name="probe-peers"),
        ]
        self.log.info(
            "node started",
            applied=self.mvcc.applied_index(),
            revision=self.mvcc.current_revision(),
            snapshot_index=self.driver.snapshot_index,
        )

    async def stop(self, transfer: bool = True) -> None:
        """Graceful stop: hand leadership to the most caught-up peer, then close LMDB."""
        if self._stopped:
            return
        if transfer and self.is_leader and len(self.membership.members) > 1:
            await reconfig.hand_off_leadership(self)
        self._stopped = True
        for t in [*self._tasks, *self._background]:
            t.cancel()
        for t in [*self._tasks, *self._background]:
            with contextlib.suppress(BaseException):
                await t
        await self.transport.stop()
        self.hub.close()
        self._io.shutdown(wait=True)
        self.logstore.env.close()
        self.mvcc.env.close()
        self.log.info("node stopped")

    async def run_io(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
        self._background.add(t)
        t.add_done_callback(self._background.discard)
        return t

    def wake(self) -> None:
        self._wake.set()

    # --- inputs -----------------------------------------------------------------------
    async def _ticker(self) -> None:
        while True:
            # clock_rate() is 1.0 outside test mode; a skewed node ticks faster/slower.
            await asyncio.sleep(self.cfg.tick_seconds / tm.clock_rate())
            self.driver.tick()
            self._wake.set()

    def _on_messages(self, msgs: list[Message]) -> None:
        if self._stopped:
            return
        commit = self.raft.log.committed
        for m in msgs:
            if m.to == self.id:
                self.raft.step(m)
        if self.trace is not None and self.raft.log.committed > commit:
            self.trace.entries(range(commit + 1, self.raft.log.committed + 1), "committed")
        self._wake.set()

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
            t0 = time.monotonic()
            try:
                await self.run_io(self._restore_from_file, path)
            except SnapshotError as e:
                self.log.warning("snapshot rejected", error=str(e))
                return
            self.metrics["snapshots_received_total"] += 1
            self.prom.snapshot_install.observe(time.monotonic() - t0)
            self.log.info("snapshot restored", applied=self.mvcc.applied_index())
            raw = self.mvcc.conf_state()
            if raw:
                reconfig.adopt(self, decode_membership(raw))
        self._on_messages([m])

    def _restore_from_file(self, path: Path) -> None:
        with open(path, "rb") as f:
            self.mvcc.restore(iter(lambda: f.read(1 << 20), b""))

    # --- client API -------------------------------------------------------------------
    @property
    def leader_client_url(self) -> str | None:
        return self.membership.client_url(self.leader) if self.leader else None

    def check_serving(self) -> None:
        """Refuse work this member cannot do at all right now (never proposed)."""
        if self.fatal is not None:
            raise Unavailable(Why.NOT_APPLYING)
        if self._stopped:
            raise Unavailable(Why.STOPPING)
        if self.membership.removed:
            raise Unavailable(Why.REMOVED)

    async def propose(self, cmd: Any, data: bytes | None = None) -> ApplyResult:
        """Replicate and apply one command (`data`: its encoding, if already made); the
        ApplyResult from the local apply.

        Raises Unavailable: never proposed (no leader, storage trouble) or, with
        `proposed=True`, outcome unknown (timeout, shutdown).
        """
        self.check_serving()
        if self.storage_trouble is not None:
            raise Unavailable(Why.STORAGE)
        rid = cmd.request_id
        if rid is None:
            rid = new_request_id()
            cmd = dataclasses.replace(cmd, request_id=rid)
            data = None
        data = data or cmd.encode()
        fut: asyncio.Future[ApplyResult] = asyncio.get_running_loop().create_future()
        self.metrics["proposals_total"] += 1
        try:
            self.driver.propose(data, rid, fut)
        except ProposalDropped:
            self.metrics["proposals_failed_total"] += 1
            raise Unavailable(Why.NO_LEADER) from None
        self._wake.set()
        if self.trace is not None:
            self.trace.request(rid, "proposed")
        t0 = time.monotonic()
        try:
            result = await asyncio.wait_for(fut, self.cfg.request_timeout)
            self.prom.proposal_duration.observe(time.monotonic() - t0)
            if self.trace is not None:
                self.trace.request(rid, "resolved")
            return result
        except TimeoutError:
            self.metrics["proposals_failed_total"] += 1
            raise Unavailable(Why.TIMEOUT, proposed=True) from None
        finally:
            self.driver.forget(rid, fut)

    async def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a conf change (ProposalDropped if the core refuses it now)."""
        self.check_serving()
        self.raft.propose_conf_change(cc)
        self._wake.set()

    async def read_barrier(self) -> None:
        """Wait until a linearizable read may be served from the local state machine.

        Concurrent callers share one ReadIndex round (the driver batches them)."""
        self.check_serving()
        self.metrics["reads_linearizable_total"] += 1
        if tm.mutation("follower-local-reads") and not self.is_leader:
            return  # MUTATION: serve a "linearizable" read from possibly stale local state
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.driver.read(fut):
            asyncio.get_running_loop().call_soon(self._flush_reads)
        try:
            await asyncio.wait_for(fut, self.cfg.request_timeout)
        except TimeoutError:
            raise Unavailable(Why.TIMEOUT) from None

    def _flush_reads(self) -> None:
        for fut in self.driver.flush_reads():
            if not fut.done():  # type: ignore[attr-defined]
                fut.set_exception(Unavailable(Why.NO_LEADER))  # type: ignore[attr-defined]
        self._wake.set()

    async def wait_applied(self, index: int, timeout: float | None = None) -> None:
        if self.driver.applied >= index:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.driver.wait_applied(index, fut)
        try:
            await asyncio.wait_for(fut, timeout or self.cfg.request_timeout)
        except TimeoutError:
            raise Unavailable(Why.TIMEOUT, proposed=True) from None

    async def wait_role_change(self, timeout: float) -> None:
        """Until the leader or this member's role changes (TimeoutError after `timeout`)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._role_waiters.append(fut)
        await asyncio.wait_for(fut, timeout)

    # --- leases -----------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if not self.is_leader:
                continue
            for lid in self.lessor.expired():
                self.log.info("lease expired", lease=lid)
                self.spawn(self._revoke_quietly(lid))

    async def _revoke_quietly(self, lid: int) -> None:
        with contextlib.suppress(Unavailable):  # retried by the lease loop after 3 s
            await self.propose(cmds.LeaseRevoke(lid))

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        hs = self.raft.hard_state
        leader = self.membership.get(self.leader)
        return {
            "name": self.cfg.name,
            "id": self.id,
            "leader": self.leader,
            "leader_name": leader.name if leader else None,
            "role": self.role.name.lower(),
            "term": hs.term,
            "commit": hs.commit,
            "applied": self.mvcc.applied_index(),
            "revision": self.mvcc.current_revision(),
            "compact_revision": self.mvcc.compact_revision(),
            "db_size": self.mvcc.db_size(),
            "raft_first_index": self.logstore.first_index(),
            "raft_last_index": self.logstore.last_index(),
            "snapshot_index": self.driver.snapshot_index,
        }
