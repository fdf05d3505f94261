"""A gRPC watcher that stops reading: it is cut off, and nobody else notices.

The slow client is a raw HTTP/2 connection (the `h2` package) that opens a Watch and
never grants flow-control window back, so the member's sends block after 64 KiB.
Meanwhile another watcher on its own stream must keep getting every event promptly,
the member must keep answering, and after SLOW_SEND the stuck stream must end with
Unavailable (clientv3 then reconnects and resumes) rather than holding memory.
"""

from __future__ import annotations

import os
import socket
import time

import h2.config
import h2.connection
import h2.events

from raftkv.etcdpb import rpc_pb2 as pb
from raftkv.server.grpc.streams import SLOW_SEND
from tests.grpc_helpers import EtcdClient
from tests.integration.cluster import Cluster

VALUE = os.urandom(8 * 1024).hex().encode()  # 16 KiB per event


def _frame(msg: pb.WatchRequest) -> bytes:
    body = msg.SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_watcher_that_never_reads_is_cut_off_alone(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    member = cluster.members[leader]
    assert member.proc is not None
    port = member.client_port

    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(
        sid,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/etcdserverpb.Watch/Watch"),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ],
    )
    create = pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"slow/", range_end=b"slow0"))
    conn.send_data(sid, _frame(create))
    sock.sendall(conn.data_to_send())

    with EtcdClient(port) as good:
        watch = good.stream("Watch/Watch")
        watch.send(
            pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"slow/", range_end=b"slow0"))
        )
        assert watch.recv(10).created
        rss_before = _rss_mb(member.proc.pid)
        # ~6 MiB of events: far past the stuck stream's 64 KiB window
        for i in range(400):
            assert cluster.put(leader, f"slow/{i % 20}", VALUE).status == 200
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 400 and time.monotonic() < deadline:
            seen += len(watch.recv(10).events)
        assert seen == 400, "the reading watcher got every event while the other was stuck"
        started = time.monotonic()
        assert cluster.get(leader, "slow/1").status == 200  # the member still answers
        assert _rss_mb(member.proc.pid) - rss_before < 100

        # The stuck stream ends with Unavailable once a send has waited SLOW_SEND.
        time.sleep(max(0.0, SLOW_SEND + 2 - (time.monotonic() - started)))
        status = None
        sock.settimeout(10)
        end = time.monotonic() + 15
        while status is None and time.monotonic() < end:
            data = sock.recv(1 << 20)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                if isinstance(ev, h2.events.TrailersReceived):
                    status = dict(ev.headers).get(b"grpc-status")
                if isinstance(ev, h2.events.StreamReset) and status is None:
                    status = f"reset {ev.error_code!r}".encode()  # reset without trailers
            sock.sendall(conn.data_to_send())
        sock.close()
        assert status == b"14", f"the stuck watch ended with grpc-status {status!r}"
        watch.close()
