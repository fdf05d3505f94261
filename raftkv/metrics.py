"""Prometheus metrics of one member, with prometheus-client, named after etcd's.

Every etcd metric an operator alerts on has a raftkv twin with the `etcd_` prefix
replaced by `raftkv_` (`etcd_disk_wal_fsync_duration_seconds` →
`raftkv_disk_wal_fsync_duration_seconds`), so etcd dashboards and alerts map over by
a rename; README "Metrics" lists them. Two kinds:

- Histograms and counters observed on the hot path (fsync, apply, proposals,
  requests, snapshot installs, watch delivery). prometheus-client's observe is a few
  microseconds, and label children are cached so a request does no dict building.
- Everything that is state (leader, indices, sizes, peers, watchers) is read at scrape
  time by a collector, so it costs nothing between scrapes.

One registry per member (not prometheus-client's global one), so several members in
one process — tests, the simulator — never share or clash.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from raftkv.errors import RaftkvError
from raftkv.raft import Role

if TYPE_CHECKING:
    from raftkv.node.node import Node

# The classic text format (what etcd serves and every Prometheus version reads);
# prometheus-client's CONTENT_TYPE_LATEST now names 1.0.0, which older servers refuse.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # no *_created series: they double the output for nothing
# etcd's disk histograms start at 1 ms; an LMDB commit here takes 0.2-1 ms, so finer.
DISK_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
    0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
)  # fmt: skip
REQUEST_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SLOW_APPLY = 0.1  # seconds: etcd's "apply request took too long" threshold
# Seconds between peer round-trip probes (the variable is for tests).
PROBE_EVERY = float(os.environ.get("RAFTKV_PEER_PROBE_SECONDS", "5"))

# The node's plain counters (node.metrics), with their help text.
COUNTERS = {
    "proposals_total": "Proposals this member handed to Raft.",
    "proposals_failed_total": "Proposals that failed (no leader, timeout).",
    "applied_entries_total": "Log entries applied to the state machine.",
    "reads_linearizable_total": "Linearizable reads (ReadIndex rounds joined).",
    "snapshots_taken_total": "Snapshots of the state machine taken (log compactions).",
    "snapshots_received_total": "Snapshots received from the leader and installed.",
    "leader_changes_total": "Leader changes seen by this member.",
    "storage_retries_total": "Storage writes retried after a full disk.",
}


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)  # process_resident_memory_bytes etc., as etcd exports
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.wal_fsync = Histogram(
            "raftkv_disk_wal_fsync_duration_seconds",
            "Durable commits of the Raft log (one per Ready: entries, hard state, "
            "snapshot meta). Twin of etcd_disk_wal_fsync_duration_seconds.",
            buckets=DISK_BUCKETS,
            registry=r,
        )
        self.backend_commit = Histogram(
            "raftkv_disk_backend_commit_duration_seconds",
            "Applying one batch of committed entries to the LMDB state machine, commit "
            "included. Twin of etcd_disk_backend_commit_duration_seconds.",
            buckets=DISK_BUCKETS,
            registry=r,
        )
        self.proposal_duration = Histogram(
            "raftkv_server_proposal_duration_seconds",
            "From handing a proposal to Raft to its applied result, on the member that "
            "proposed it (replication, commit and apply).",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.slow_applies = Counter(
            "raftkv_server_slow_apply",
            f"Apply batches that took longer than {SLOW_APPLY * 1000:.0f} ms. Twin of "
            "etcd_server_slow_apply_total.",
            registry=r,
        )
        self.snapshot_install = Histogram(
            "raftkv_snap_install_duration_seconds",
            "Installing a snapshot received from the leader (restore of the state machine).",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.watch_lag = Histogram(
            "raftkv_watch_event_delivery_lag_seconds",
            "From an event's apply to its hand-over to the watch stream that sends it.",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self._requests = Histogram(
            "raftkv_request_duration_seconds",
            "Client requests by API face (v1, gateway, grpc), operation and status code "
            "(HTTP status, or gRPC status name). Streams are not included.",
            ["face", "operation", "code"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[str, str, str], Any] = {}
        self.peer_rtt: dict[str, float] = {}  # peer name -> last measured RTT (seconds)

    def request(self, face: str, operation: str, code: str, seconds: float) -> None:
        key = (face, operation, code)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 2000:  # bounded label sets, whatever the clients send
                key = (face, "other", code)
                child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._requests.labels(*key)
        child.observe(seconds)

    def attach(
        self, node: Node, extra: dict[str, tuple[str, Callable[[], float]]] | None = None
    ) -> None:
        """Export the node's state at scrape time (`extra`: name -> (help, read) of
        gauges owned elsewhere, e.g. the HTTP app's open streams)."""
        self.registry.register(_NodeCollector(node, self, extra or {}))

    async def probe_peers(self, node: Node) -> None:
        """Every PROBE_EVERY seconds, time a no-op call to each peer over the peer link
        (the same path Raft's messages take): the peer round trip an operator graphs."""
        while True:
            await asyncio.sleep(PROBE_EVERY)
            for m in list(node.members):
                if m.id == node.id:
                    continue
                t0 = time.monotonic()
                try:
                    await node.transport.rpc.call(m.id, "ping", [], 1.0)
                except (RaftkvError, OSError):
                    self.peer_rtt.pop(m.name, None)  # unreachable: no sample
                    continue
                self.peer_rtt[m.name] = time.monotonic() - t0

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def pong(caller: int, args: list[Any]) -> None:
    """The peer side of `probe_peers`: answers at once."""
    return None


def _gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=list(labels))
    g.add_metric(list(labels.values()), value)
    return g


class _NodeCollector:
    """State read at scrape time."""

    def __init__(
        self, node: Node, metrics: NodeMetrics, extra: dict[str, tuple[str, Callable[[], float]]]
    ) -> None:
        self.node = node
        self.metrics = metrics
        self.extra = extra

    def describe(self) -> list[Metric]:
        return []  # families vary with the membership: collect() says what there is

    def collect(self) -> Iterator[Metric]:
        n = self.node
        hs = n.raft.hard_state
        leader = n.role == Role.LEADER
        yield _gauge("raftkv_server_has_leader", "1 if a leader is known.", int(n.leader != 0))
        yield _gauge("raftkv_server_is_leader", "1 if this member leads.", int(leader))
        yield _gauge(
            "raftkv_server_is_learner", "1 if a learner.", int(n.membership.is_learner(n.id))
        )
        yield _gauge("raftkv_server_term", "The current Raft term.", hs.term)
        yield _gauge(
            "raftkv_server_proposals_committed_total", "The committed Raft index.", hs.commit
        )
        yield _gauge(
            "raftkv_server_proposals_applied_total", "The applied index.", n.mvcc.applied_index()
        )
        yield _gauge(
            "raftkv_server_proposals_pending", "Proposals waiting for their result.",
            n.driver.pending,
        )  # fmt: skip
        yield _gauge(
            "raftkv_server_quota_backend_bytes", "--quota-backend-bytes.", n.mvcc.quota_bytes
        )
        yield _gauge(
            "raftkv_mvcc_db_total_size_in_bytes", "The state machine file's size.",
            n.mvcc.db_size(),
        )  # fmt: skip
        yield _gauge(
            "raftkv_mvcc_db_total_size_in_use_in_bytes", "Pages of the state machine in use.",
            n.mvcc.db_size_in_use(),
        )  # fmt: skip
        yield _gauge(
            "raftkv_mvcc_current_revision", "The store revision.", n.mvcc.current_revision()
        )
        yield _gauge(
            "raftkv_mvcc_compact_revision", "The compacted revision.", n.mvcc.compact_revision()
        )
        yield _gauge("raftkv_server_leases", "Live leases.", len(n.mvcc.lease_list()))
        yield _gauge("raftkv_mvcc_watchers", "Open watchers.", len(n.hub.watchers))
        yield _gauge(
            "raftkv_mvcc_watch_buffered_bytes", "Event bytes buffered for watchers.",
            n.hub.buffered,
        )  # fmt: skip
        yield _gauge(
            "raftkv_server_uptime_seconds", "Seconds since the member started.",
            time.monotonic() - n.started,
        )  # fmt: skip
        for name, (doc, read) in self.extra.items():
            yield _gauge(name, doc, read())
        fell = CounterMetricFamily(
            "raftkv_mvcc_watchers_fell_behind", "Watchers that fell behind the event stream."
        )
        fell.add_metric([], n.hub.fell_behind)
        yield fell
        for key, doc in COUNTERS.items():
            c = CounterMetricFamily("raftkv_" + key.removesuffix("_total"), doc)
            c.add_metric([], n.metrics.get(key, 0))
            yield c
        yield from self._peers()

    def _peers(self) -> Iterator[Metric]:
        n = self.node
        lag = GaugeMetricFamily(
            "raftkv_network_peer_match_lag",
            "Leader only: entries a peer's log is behind the leader's last index.",
            labels=["To"],
        )
        inflight = GaugeMetricFamily(
            "raftkv_network_peer_inflight_appends",
            "Leader only: appends sent to a peer and not yet acknowledged.",
            labels=["To"],
        )
        rtt = GaugeMetricFamily(
            "raftkv_network_peer_round_trip_time_seconds",
            "Last measured round trip of a peer call (every 5 s). Twin of etcd's histogram.",
            labels=["To"],
        )
        if n.role == Role.LEADER:
            last = n.raft.log.last_index()
            for pid, pr in n.raft.prs.items():
                m = n.membership.get(pid)
                if pid == n.id or m is None:
                    continue
                lag.add_metric([m.name], max(0, last - pr.match))
                inflight.add_metric([m.name], pr.inflights.count())
        for name, seconds in self.metrics.peer_rtt.items():
            rtt.add_metric([name], seconds)
        yield lag
        yield inflight
        yield rtt
