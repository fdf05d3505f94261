"""The benchmark's raw HTTP/2 gRPC generator (raftkv/bench_grpc.py) counts calls and
errors correctly, against a tiny grpclib server in the test's own loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from grpclib.const import Cardinality, Handler, Status
from grpclib.exceptions import GRPCError
from grpclib.server import Server, Stream

from raftkv.bench_grpc import (
    GOAWAY,
    PREFACE,
    SETTINGS,
    _Conn,
    _frame,
    _Load,
    encode_requests,
    grpc_frame,
    header_blocks,
    run_grpc_load,
)
from raftkv.etcdpb import rpc_pb2 as pb


class FakeKV:
    """KV/Put that refuses the key b"bad"; KV/Range that answers one kv."""

    def __init__(self) -> None:
        self.puts = 0

    async def put(self, stream: Stream[Any, Any]) -> None:
        req = await stream.recv_message()
        self.puts += 1
        if req.key == b"bad":
            raise GRPCError(Status.INVALID_ARGUMENT, "bad key: 100%")
        await stream.send_message(pb.PutResponse())

    async def range_(self, stream: Stream[Any, Any]) -> None:
        req = await stream.recv_message()
        await stream.send_message(pb.RangeResponse(count=1, kvs=[{"key": req.key}]))

    def __mapping__(self) -> dict[str, Handler]:
        return {
            "/etcdserverpb.KV/Put": Handler(
                self.put, Cardinality.UNARY_UNARY, pb.PutRequest, pb.PutResponse
            ),
            "/etcdserverpb.KV/Range": Handler(
                self.range_, Cardinality.UNARY_UNARY, pb.RangeRequest, pb.RangeResponse
            ),
        }


async def test_counts_calls_and_errors() -> None:
    kv = FakeKV()
    server = Server([kv])
    await server.start("127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        good = grpc_frame(pb.PutRequest(key=b"k", value=b"v").SerializeToString())
        bad = grpc_frame(pb.PutRequest(key=b"bad", value=b"v").SerializeToString())
        # 8 clients, 4 streams per connection: two connections; every other call fails
        t = await run_grpc_load(
            [("127.0.0.1", port)], "put", 8, 0.5, streams_per_conn=4, requests=[good, bad]
        )
        assert t.ok > 50 and t.errors > 50
        assert abs(t.ok - t.errors) <= 8
        assert t.ok + t.errors == kv.puts
        assert t.first_error == "grpc-status 3: bad key: 100%"
        assert len(t.latencies) == t.ok and all(x > 0 for x in t.latencies)
        assert 0.5 <= t.elapsed < 2 and t.cpu > 0

        t = await run_grpc_load([("127.0.0.1", port)], "get-serializable", 3, 0.3)
        assert t.ok > 10 and t.errors == 0 and t.first_error is None
    finally:
        server.close()
        await server.wait_closed()
    assert len(encode_requests("put")) == 1000


@pytest.mark.parametrize("goodbye", ["close", "goaway"])
async def test_a_lost_connection_is_counted_and_ends_the_run(goodbye: str) -> None:
    """A server that answers the preface, then hangs up (or sends GOAWAY, last
    stream 0) once requests arrive: every call in flight is an error, the run ends."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(len(PREFACE))
        writer.write(_frame(SETTINGS, 0, 0))
        await reader.read(1)  # our SETTINGS (or a request): enough
        await asyncio.sleep(0.05)
        if goodbye == "goaway":
            writer.write(_frame(GOAWAY, 0, 0, bytes(4) + bytes(4) + b"bye"))
            await asyncio.sleep(0.05)
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        t = await asyncio.wait_for(
            run_grpc_load([("127.0.0.1", port)], "put", 4, 5.0, streams_per_conn=2), 3
        )
    finally:
        srv.close()
        await srv.wait_closed()
    assert t.ok == 0 and t.errors == 4
    want = "GOAWAY (error code 0, b'bye')" if goodbye == "goaway" else "connection lost"
    assert t.first_error is not None and t.first_error.startswith(want)


class _Capture(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = b""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += bytes(data)


def _sent_blocks(sent: bytes) -> list[bytes]:
    """The HEADERS blocks in what a _Conn wrote after its preface."""
    sent, blocks = sent[len(PREFACE) :], []
    while sent:
        size, kind = int.from_bytes(sent[:3], "big"), sent[3]
        if kind == 1:
            blocks.append(sent[9 : 9 + size])
        sent = sent[9 + size :]
    return blocks


async def test_request_headers_are_indexed_and_follow_a_table_shrink() -> None:
    """Later calls send indexed references; when the server shrinks the table, the
    next block opens with a size update to 0 and no block uses the table again."""
    from hpack import Decoder

    load = _Load([grpc_frame(b"")], clients=1)
    load.deadline = float("inf")
    conn = _Conn(load, header_blocks("/etcdserverpb.KV/Put", "h:1"))
    transport = _Capture()
    conn.connection_made(transport)
    server = Decoder()  # the server's view of our header blocks
    want = [(":method", "POST"), (":scheme", "http"), (":path", "/etcdserverpb.KV/Put")]

    def call() -> bytes:
        before = len(transport.sent)
        conn.start(0)
        conn.flush()
        [block] = _sent_blocks(PREFACE + transport.sent[before:])
        assert server.decode(block)[:3] == want
        return block

    first, second = call(), call()
    assert len(second) < 8 < len(first) and len(server.header_table.dynamic_entries) == 4
    # the server says HEADER_TABLE_SIZE = 0
    conn.data_received(_frame(SETTINGS, 0, 0, (1).to_bytes(2, "big") + bytes(4)))
    server.max_allowed_table_size = 0
    third, fourth = call(), call()
    assert third[0] == 0x20 and fourth[0] != 0x20
    assert len(server.header_table.dynamic_entries) == 0
