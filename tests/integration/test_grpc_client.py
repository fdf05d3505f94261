"""A grpcio client against a live 3-member raftkv: etcd's v3 gRPC API end to end.

Follower paths, client-side failover across endpoints while the leader is SIGKILLed,
a watch resumed on another member after its member died (no event lost or repeated),
the receive limit, garbage on the HTTP/2 port, and HTTP/1.1 beside open gRPC streams.
Every call has a deadline, every stream read a timeout.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from raftkv.etcdpb import rpc_pb2 as pb
from tests.grpc_helpers import EtcdClient, Stream
from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_ARGS

MAX_REQUEST = 100_000  # --max-request-bytes of the shared cluster
GRPC_LIMIT = MAX_REQUEST + 512 * 1024  # etcd's receive limit: + grpcOverheadBytes
RETRY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the tests that kill nothing."""
    c = Cluster(
        tmp_path_factory.mktemp("grpc3"),
        3,
        [*FAST_ARGS, "--max-request-bytes", str(MAX_REQUEST)],
    )
    c.start_all()
    try:
        c.wait_leader(30)
        c.wait_healthy()
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.close()


def _follower(c: Cluster) -> str:
    return c.followers(c.wait_leader())[0]


def _put(key: bytes, value: bytes) -> pb.PutRequest:
    return pb.PutRequest(key=key, value=value)


def _prefix_end(p: bytes) -> bytes:
    return p[:-1] + bytes([p[-1] + 1])


def _watch(prefix: bytes, start: int = 0, prev_kv: bool = False) -> pb.WatchRequest:
    return pb.WatchRequest(
        create_request=pb.WatchCreateRequest(
            key=prefix, range_end=_prefix_end(prefix), start_revision=start, prev_kv=prev_kv
        )
    )


def _events(s: Stream, n: int, timeout: float = 10.0) -> list[Any]:
    """The next `n` events of a watch stream (responses may batch several)."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        m = s.recv(max(0.1, deadline - time.monotonic()))
        assert m is not None, "watch stream ended"
        assert not m.canceled, m
        out.extend(m.events)
    assert len(out) == n, out
    return out


class Failover:
    """A client that knows every endpoint and moves to the next one on UNAVAILABLE or
    a deadline (a dead member, no leader yet, a forward that timed out)."""

    def __init__(self, ports: list[int], budget: float = 30.0) -> None:
        self.clients = [EtcdClient(p) for p in ports]
        self.i = 0
        self.budget = budget
        self.failures: list[tuple[int, str]] = []  # (endpoint index, code)

    def call(self, name: str, req: Any) -> Any:
        deadline = time.monotonic() + self.budget
        while True:
            try:
                return self.clients[self.i].call(name, req, timeout=3)
            except grpc.RpcError as e:
                if e.code() not in RETRY or time.monotonic() > deadline:
                    raise
                self.failures.append((self.i, e.code().name))
                self.i = (self.i + 1) % len(self.clients)
                time.sleep(0.05)

    def close(self) -> None:
        for c in self.clients:
            c.close()


# --- (a) ---------------------------------------------------------------------------------


def test_put_get_txn_watch_via_follower(shared: Cluster) -> None:
    f = _follower(shared)
    with EtcdClient(shared.members[f].client_port) as c:
        w = c.stream("Watch/Watch")
        try:
            w.send(_watch(b"a/", prev_kv=True))
            created = w.recv(5)
            assert created.created and not created.events
            put = c.call("KV/Put", _put(b"a/x", b"1"))
            rev = put.header.revision
            assert put.header.member_id != 0
            got = c.call("KV/Range", pb.RangeRequest(key=b"a/x"))  # linearizable, ReadIndex
            assert [(k.key, k.value, k.mod_revision) for k in got.kvs] == [(b"a/x", b"1", rev)]
            assert got.header.revision >= rev
            (ev,) = _events(w, 1)
            assert (ev.type, ev.kv.key, ev.kv.value, ev.kv.mod_revision) == (0, b"a/x", b"1", rev)

            cas = pb.TxnRequest(
                compare=[
                    pb.Compare(
                        key=b"a/x",
                        target=pb.Compare.VALUE,
                        result=pb.Compare.EQUAL,
                        value=b"1",
                    )
                ],
                success=[pb.RequestOp(request_put=_put(b"a/x", b"2"))],
                failure=[pb.RequestOp(request_range=pb.RangeRequest(key=b"a/x"))],
            )
            ok = c.call("KV/Txn", cas)
            assert ok.succeeded and ok.header.revision == rev + 1
            again = c.call("KV/Txn", cas)
            assert not again.succeeded
            assert again.responses[0].response_range.kvs[0].value == b"2"
            (ev,) = _events(w, 1)
            assert (ev.kv.value, ev.prev_kv.value, ev.kv.version) == (b"2", b"1", 2)

            d = c.call("KV/DeleteRange", pb.DeleteRangeRequest(key=b"a/x", prev_kv=True))
            assert d.deleted == 1 and d.prev_kvs[0].value == b"2"
            (ev,) = _events(w, 1)
            assert ev.type == 1 and ev.kv.mod_revision == rev + 2 and ev.prev_kv.value == b"2"
            ser = c.call("KV/Range", pb.RangeRequest(key=b"a/x", serializable=True))
            assert ser.count == 0
        finally:
            w.close()


# --- (b) ---------------------------------------------------------------------------------


def test_failover_keeps_every_acknowledged_write(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    names = [leader, *cluster.followers(leader)]  # start on the leader: it is killed
    fo = Failover([cluster.members[n].client_port for n in names])
    acked: dict[bytes, bytes] = {}
    try:
        i = 0

        def write() -> None:
            nonlocal i
            key, value = f"fo/{i:05d}".encode(), f"v{i}".encode()
            fo.call("KV/Put", _put(key, value))
            acked[key] = value
            i += 1

        while i < 30:
            write()
        killed_at: list[int] = []  # writes acknowledged when the leader was gone

        def kill() -> None:
            cluster.kill(leader)
            killed_at.append(i)

        killer = threading.Timer(0.05, kill)
        killer.start()  # dies with writes in flight
        try:
            deadline = time.monotonic() + 45
            while not killed_at or i < killed_at[0] + 40:
                assert time.monotonic() < deadline, f"only {i} writes acknowledged"
                write()
        finally:
            killer.join(10)
        assert leader not in cluster.running()
        assert any(n == 0 for n, _ in fo.failures), fo.failures  # it did fail over
        assert fo.i != 0
        survivors = [n for n in names if n != leader]
        cluster.wait_leader(among=survivors)
        for n in survivors:
            with EtcdClient(cluster.members[n].client_port) as c:
                r = c.call("KV/Range", pb.RangeRequest(key=b"fo/", range_end=b"fo0"))
                stored = {kv.key: kv.value for kv in r.kvs}
                missing = {k: v for k, v in acked.items() if stored.get(k) != v}
                assert not missing, f"{n} lost acknowledged writes: {sorted(missing)[:5]}"
    finally:
        fo.close()


# --- (c) ---------------------------------------------------------------------------------


def _collect(s: Stream, into: list[Any], until: int, timeout: float) -> grpc.RpcError | None:
    """Events into `into` until one at revision >= `until`, or the stream's failure."""
    deadline = time.monotonic() + timeout
    while not into or into[-1].kv.mod_revision < until:
        if time.monotonic() > deadline:
            raise AssertionError(f"no event at revision {until} within {timeout}s")
        try:
            m = s.recv(0.5)
        except queue.Empty:
            continue
        except grpc.RpcError as e:
            return e
        assert m is not None and not m.canceled, m
        into.extend(m.events)
    return None


def _ev(e: Any) -> tuple[int, bytes, bytes, int]:
    return e.type, e.kv.key, e.kv.value, e.kv.mod_revision


def _wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_watch_resumes_on_another_member_without_loss_or_duplicates(cluster: Cluster) -> None:
    leader = cluster.wait_leader()
    a = leader  # the watch's member, killed: a leader makes the writes fail over too
    b, c = cluster.followers(leader)
    port = {n: cluster.members[n].client_port for n in (a, b, c)}
    fo = Failover([port[b], port[c]])
    acked: list[tuple[bytes, bytes, int]] = []
    stop = threading.Event()
    writer_error: list[BaseException] = []

    def write(i: int) -> None:
        key, value = f"wk/{i:04d}".encode(), f"{i}".encode()
        r = fo.call("KV/Put", _put(key, value))
        acked.append((key, value, r.header.revision))

    def writer() -> None:
        try:
            i = 10
            while not stop.is_set() and i < 2000:
                write(i)
                i += 1
                time.sleep(0.01)
        except BaseException as e:
            writer_error.append(e)

    seen: list[Any] = []
    ca, cb = EtcdClient(port[a]), EtcdClient(port[b])
    th = threading.Thread(target=writer)
    try:
        start = fo.call("KV/Range", pb.RangeRequest(key=b"wk/")).header.revision + 1
        for i in range(10):  # before the watch exists: replayed from history
            write(i)
        wa = ca.stream("Watch/Watch")
        wa.send(_watch(b"wk/", start=start))
        assert wa.recv(5).created
        th.start()
        # before the kill: the replay, then live events
        assert _collect(wa, seen, until=start + 40, timeout=20) is None
        cluster.kill(a)
        acked_at_kill = len(acked)
        err = _collect(wa, seen, until=1 << 62, timeout=10)
        assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, err
        wa.close()
        # writes go on (once B and C have elected a leader) while no watch is connected
        _wait_for(lambda: len(acked) >= acked_at_kill + 10 or writer_error, 30, "writes")
        last = seen[-1].kv.mod_revision
        wb = cb.stream("Watch/Watch")
        wb.send(_watch(b"wk/", start=last + 1))
        created = wb.recv(10)
        assert created.created
        reconnected_at = created.header.revision
        n = len(acked)
        _wait_for(lambda: len(acked) >= n + 20 or writer_error, 30, "writes after")
        stop.set()
        th.join(30)
        assert not th.is_alive() and not writer_error, writer_error
        final = max(r for _, _, r in acked)
        assert _collect(wb, seen, until=final, timeout=20) is None
        assert wb.quiet(0.3) == "open"
        wb.close()

        revs = [r for _, _, r in acked]
        assert min(revs) < last < reconnected_at < final
        assert any(last < r <= reconnected_at for r in revs), "no write while disconnected"
        # no duplicates, in order
        keys = [(e.kv.mod_revision, e.kv.key) for e in seen]
        assert keys == sorted(set(keys)), "an event was repeated or reordered"
        # nothing lost: exactly the history a fresh watch replays from `start`
        oracle: list[Any] = []
        wc = cb.stream("Watch/Watch")
        wc.send(_watch(b"wk/", start=start))
        assert wc.recv(10).created
        assert _collect(wc, oracle, until=final, timeout=20) is None
        wc.close()
        assert [_ev(e) for e in seen] == [_ev(e) for e in oracle]
        # and every acknowledged write is among the events, at its revision
        assert set(acked) <= {(e.kv.key, e.kv.value, e.kv.mod_revision) for e in seen}
    finally:
        stop.set()
        if th.is_alive():
            th.join(30)
        ca.close()
        cb.close()
        fo.close()


# --- (d) ---------------------------------------------------------------------------------


def test_oversized_request_is_refused_and_the_member_stays_up(shared: Cluster) -> None:
    for name in (shared.wait_leader(), _follower(shared)):
        with EtcdClient(shared.members[name].client_port) as c:
            big = _put(b"big", b"x" * (GRPC_LIMIT + 1))
            with pytest.raises(grpc.RpcError) as ei:
                c.call("KV/Put", big)
            assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert ei.value.details() == (
                f"grpc: received message larger than max ({big.ByteSize()} vs. {GRPC_LIMIT})"
            )
            # within gRPC's limit but over --max-request-bytes: etcd's own check
            with pytest.raises(grpc.RpcError) as ei:
                c.call("KV/Put", _put(b"big", b"x" * (MAX_REQUEST + 1)))
            assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert ei.value.details() == "etcdserver: request is too large"
            # a stream's request message is bounded the same way
            w = c.stream("Watch/Watch")
            try:
                w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b"k" * GRPC_LIMIT)))
                with pytest.raises(grpc.RpcError) as ei:
                    w.recv(10)
                assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            finally:
                w.close()
            # the same channel, and the member, still serve
            r = c.call("KV/Put", _put(b"small", b"x" * (MAX_REQUEST - 100)))
            assert r.header.revision > 0
            assert c.call("KV/Range", pb.RangeRequest(key=b"small", keys_only=True)).count == 1
        assert shared.members[name].proc is not None
        assert shared.members[name].proc.poll() is None


# --- (e) ---------------------------------------------------------------------------------


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data
    raise AssertionError(f"connection still open after {timeout}s; got {out[:200]!r}")


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """HTTP/2 frames: (type, stream id, payload)."""
    out = []
    while len(data) >= 9:
        n = int.from_bytes(data[:3], "big")
        out.append((data[3], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF, data[9 : 9 + n]))
        data = data[9 + n :]
    return out


def test_garbage_http2_and_unknown_methods(shared: Cluster) -> None:
    name = _follower(shared)
    port = shared.members[name].client_port
    # A valid preface, then bytes that are no HTTP/2 frames (a SETTINGS frame of a bad
    # size): the member answers as HTTP/2 (its SETTINGS) and closes the connection.
    # (grpclib closes without sending the GOAWAY that h2 queued; RFC 9113 says SHOULD.)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(PREFACE + b"\x00\x00\x03\x04\x00\x00\x00\x00\x00abc" + b"\xde\xad" * 64)
        frames = _frames(_read_until_closed(s, 10))
        assert frames and frames[0][:2] == (0x4, 0), frames  # SETTINGS: it was HTTP/2
    # DATA on stream 0 is a connection error too
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        s.sendall(PREFACE + settings + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        frames = _frames(_read_until_closed(s, 10))
        assert frames and frames[0][:2] == (0x4, 0), frames
    # half a preface, then the client goes away
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(PREFACE[:10])
    # unknown methods and services over a real gRPC client
    with EtcdClient(port) as c:
        for path, text in (
            ("/etcdserverpb.KV/Nope", "unknown method Nope for service etcdserverpb.KV"),
            ("/etcdserverpb.Nothing/Range", "unknown service etcdserverpb.Nothing"),
        ):
            with pytest.raises(grpc.RpcError) as ei:
                c.raw(path, b"")
            assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert ei.value.details() == text
        # the member still serves both protocols
        assert c.call("KV/Put", _put(b"after-garbage", b"1")).header.revision > 0
    r = shared.get(name, "after-garbage")
    assert r.status == 200 and r.json()["value"] == "1"
    assert shared.members[name].proc is not None
    assert shared.members[name].proc.poll() is None


# --- (f) ---------------------------------------------------------------------------------


def test_http1_on_the_same_port_while_grpc_streams_are_open(shared: Cluster) -> None:
    name = _follower(shared)
    port = shared.members[name].client_port
    with EtcdClient(port) as c:
        lease = c.call("Lease/LeaseGrant", pb.LeaseGrantRequest(TTL=30)).ID
        w = c.stream("Watch/Watch")
        ka = c.stream("Lease/LeaseKeepAlive")
        try:
            w.send(_watch(b"h1/"))
            assert w.recv(5).created
            ka.send(pb.LeaseKeepAliveRequest(ID=lease))
            assert lease == ka.recv(5).ID

            # /v1 over HTTP/1.1, keep-alive connection, curl-style requests
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("PUT", "/v1/kv/h1/a", body=b"from-http1")
                r = conn.getresponse()
                body = json.loads(r.read())
                assert r.status == 200, body
                rev = body["revision"]
                conn.request("GET", "/v1/kv/h1/a", headers={"User-Agent": "curl/8.5.0"})
                r = conn.getresponse()
                got = json.loads(r.read())
                assert r.status == 200 and got["value"] == "from-http1"
                conn.request("POST", "/v3/kv/range", body=json.dumps({"key": "aDEvYQ=="}).encode())
                r = conn.getresponse()
                gw = json.loads(r.read())
                assert r.status == 200 and gw["kvs"][0]["value"] == "ZnJvbS1odHRwMQ=="
            finally:
                conn.close()

            # the gRPC streams saw it and still work
            (ev,) = _events(w, 1)
            assert (ev.kv.key, ev.kv.value, ev.kv.mod_revision) == (b"h1/a", b"from-http1", rev)
            ka.send(pb.LeaseKeepAliveRequest(ID=lease))
            assert ka.recv(5).TTL == 30
            c.call("KV/Put", _put(b"h1/b", b"from-grpc"))
            (ev,) = _events(w, 1)
            assert ev.kv.key == b"h1/b"
            r2 = shared.get(name, "h1/b")
            assert r2.status == 200 and r2.json()["value"] == "from-grpc"
            assert shared.req(name, "GET", "/health").status == 200
        finally:
            w.close()
            ka.close()
            c.call("Lease/LeaseRevoke", pb.LeaseRevokeRequest(ID=lease))
