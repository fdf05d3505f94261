"""A watcher that stops reading must not grow the server's memory, nor lose events.

The node's per-watcher queue is made tiny (RAFTKV_WATCH_QUEUE=4) and the client stops
reading while large values fill the socket buffers, so the live queue overflows. The
stream must then catch up from stored history: every revision exactly once, in order.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS

BIG = "x" * 65536
PUTS = 150


@pytest.fixture
def small_queue_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    monkeypatch.setenv("RAFTKV_WATCH_QUEUE", "4")
    c = Cluster(tmp_path, 3, list(FAST_ARGS))
    c.start_all()
    try:
        c.wait_leader(30)
        yield c
    finally:
        c.close()


def test_slow_watcher_falls_back_to_history_without_gaps(small_queue_cluster: Cluster) -> None:
    c = small_queue_cluster
    leader = c.wait_leader()
    port = c.members[leader].client_port
    # A small receive buffer, set before connecting so the TCP window is sized for
    # it: the server's writes block soon after the client stops reading.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /v1/watch/slow/?prefix HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    time.sleep(0.3)  # the watch is registered; now stop reading while writes pour in
    revisions = []
    for i in range(PUTS):
        r = c.put(leader, f"slow/{i % 7}", BIG)
        assert r.status == 200, r.body
        revisions.append(r.json()["revision"])

    # Drain the (chunked) response until we have seen the last revision.
    buf = b""
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while (not seen or seen[-1] < revisions[-1]) and time.monotonic() < deadline:
        data = sock.recv(1 << 20)
        assert data, "the server closed the watch instead of catching up"
        buf += data
        for line in buf.split(b"\n")[:-1]:
            start = line.find(b"{")
            if start < 0:
                continue
            msg = json.loads(line[start:])
            assert "canceled" not in msg, msg
            if "events" in msg:
                seen.append(msg["revision"])
        buf = buf.split(b"\n")[-1]
    sock.close()
    assert seen == revisions, "every revision exactly once, in order"
