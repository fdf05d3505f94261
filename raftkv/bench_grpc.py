"""The benchmark's gRPC load generator: etcd's KV/Put and KV/Range over raw HTTP/2.

Why it is built this way: the generator shares two cores with the three servers it
measures, so every microsecond it spends per call is taken from them. Generator CPU
per call against one raftkv member, 1-64 clients (measured while choosing):

    grpcio, sync threads or grpc.aio (a channel per 16 clients)   135-350 us
    the `h2` package, asyncio, a connection per 16 clients       145-325 us
    this module on asyncio                                         60-85 us
    this module on uvloop (what bench.py runs)                     35-60 us
    bench.py's HTTP/1.1 generator: asyncio 22-75 us, uvloop 17-60 us

grpclib answers each call in three socket writes (headers, message, trailers), so
against raftkv a call costs the generator more wake-ups than against a server that
coalesces: against etcd it is 9-15 us at 16-64 clients, and against a trivial
responder it saturates one core at ~43,000 calls/s (~22 us per call, 64 clients).
bench.py reports the cost measured in each run (gen us/op, gen cpu).

So this is a minimal HTTP/2 client of its own, written against RFC 9113 for exactly
one job: unary gRPC calls with pre-encoded requests.

- Requests are encoded once per run. Headers as grpc-go or grpcio send them: the
  first call on a connection adds them to the server's HPACK table, every later call
  sends the same ~6 bytes of indexed references (so the server decodes what it would
  from a real client; never-indexed literals would make it Huffman-decode ~60 bytes
  per call). Each message is the 5-byte gRPC prefix plus the serialized
  PutRequest/RangeRequest for one of `KEYS` keys. A call is a HEADERS frame and one
  DATA frame (END_STREAM), written as one buffer.
- Clients are slots, not tasks: when a response completes, the slot's next request is
  sent from the same `data_received` call, and everything a read triggers goes out in
  one write. Clients are multiplexed as concurrent streams, `streams_per_conn` per
  connection (as a gRPC client multiplexes calls on a channel).
- Responses are parsed frame by frame; header blocks go through one `hpack.Decoder`
  per connection (the server's encoder indexes), except that a block made only of
  one-byte indexed references (what a server sends in steady state: b"\\x88\\xbf",
  b"\\xbe") cannot change the table, so its decoding is cached until a block that may
  change the table arrives.
- A call succeeds when its trailers say grpc-status 0 after a response message;
  anything else (another status, RST_STREAM, GOAWAY, a lost connection, trailers
  missing) is counted as an error, and the first error's text is kept for the report.
- Flow control: we grant the server ~2 GiB of window up front and top it up; our own
  sends respect the server's connection window, stream window and
  MAX_CONCURRENT_STREAMS (a slot waits when none is available).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from raftkv.etcdpb import rpc_pb2 as pb

VALUE = b"v" * 256
KEYS = 1000
PATHS = {
    "put": "/etcdserverpb.KV/Put",
    "get-linearizable": "/etcdserverpb.KV/Range",
    "get-serializable": "/etcdserverpb.KV/Range",
}
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
MAX_WINDOW = 2**31 - 1
CONNECT_TIMEOUT = 10.0


@dataclass
class Tally:
    """What one run of a generator (this one or bench.py's HTTP one) measured."""

    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0  # from the first request until the last client stopped
    cpu: float = 0.0  # the generator process's CPU seconds over `elapsed`
    first_error: str | None = None

    def error(self, why: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = why


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def encode_requests(op: str, keys: int = KEYS) -> list[bytes]:
    """One pre-framed request message per key `bench/<i>` (bench.py's key space)."""
    out = []
    for i in range(keys):
        key = f"bench/{i}".encode()
        if op == "put":
            msg = pb.PutRequest(key=key, value=VALUE)
        else:
            msg = pb.RangeRequest(key=key, serializable=op == "get-serializable")
        out.append(grpc_frame(msg.SerializeToString()))
    return out


@dataclass(frozen=True)
class HeaderBlocks:
    """A call's request headers, HPACK-encoded once per connection, as a gRPC client
    does: the first block adds them to the server's dynamic table, every later block
    is the same few bytes of indexed references. `plain` touches no table (used,
    after a size update to 0, if the server shrinks the table below 4096 bytes)."""

    first: bytes
    rest: bytes
    plain: bytes


def header_blocks(path: str, authority: str) -> HeaderBlocks:
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    enc = Encoder()  # 4096 bytes: the default table size every peer starts from
    first, rest = enc.encode(headers), enc.encode(headers)
    assert min(rest) >= 0x80  # indexed references only
    plain_enc = Encoder()
    plain = plain_enc.encode([NeverIndexedHeaderTuple(n, v) for n, v in headers])
    assert not plain_enc.header_table.dynamic_entries
    return HeaderBlocks(first, rest, plain)


def _headers_head(block: bytes) -> bytes:
    """A HEADERS frame's header up to (not including) the stream id."""
    return len(block).to_bytes(3, "big") + bytes((HEADERS, END_HEADERS))


def _frame(kind: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + sid.to_bytes(4, "big") + payload


class _Load:
    """The run's shared state: requests, deadline, the tally, how many slots still run."""

    def __init__(self, requests: Sequence[bytes], clients: int) -> None:
        self.requests = requests
        self.counters = [n * 100_003 for n in range(clients)]
        self.deadline = 0.0
        self.tally = Tally()
        self.active = clients
        self.done = asyncio.get_running_loop().create_future()

    def next_request(self, slot: int) -> bytes:
        self.counters[slot] += 1
        return self.requests[self.counters[slot] % len(self.requests)]

    def slot_stopped(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


class _Conn(asyncio.Protocol):
    """One HTTP/2 connection carrying the calls of several client slots."""

    def __init__(self, load: _Load, blocks: HeaderBlocks) -> None:
        self.load = load
        self.blocks = blocks
        self.head, self.block = _headers_head(blocks.first), blocks.first
        self.after: tuple[bytes, bytes] | None = (_headers_head(blocks.rest), blocks.rest)
        self.table_reset = False
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.buf = b""
        self.out: list[bytes] = []
        self.decoder = Decoder()
        self.decoded: dict[bytes, list[tuple[bytes, bytes]]] = {}
        self.continued: tuple[int, int, bytearray] | None = None  # sid, flags, block
        self.next_sid = 1
        self.inflight: dict[int, tuple[int, float, list[int]]] = {}  # sid -> slot, t0, [bytes]
        self.waiting: deque[int] = deque()  # slots held back by flow control
        self.send_window = 65535
        self.stream_window = 65535
        self.max_streams = MAX_WINDOW
        self.consumed = 0
        self.closed = False

    # --- sending ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        settings = (2).to_bytes(2, "big") + bytes(4)  # ENABLE_PUSH 0
        settings += (4).to_bytes(2, "big") + MAX_WINDOW.to_bytes(4, "big")  # INITIAL_WINDOW
        grant = (MAX_WINDOW - 65535).to_bytes(4, "big")
        transport.write(  # type: ignore[attr-defined]
            PREFACE + _frame(SETTINGS, 0, 0, settings) + _frame(WINDOW_UPDATE, 0, 0, grant)
        )

    def start(self, slot: int) -> None:
        """Issue a slot's next call (buffered: the caller flushes)."""
        if self.closed:
            self.load.slot_stopped()
            return
        body = self.load.next_request(slot)
        size = len(body)
        if size > self.stream_window:
            self.load.tally.error(f"server's stream window {self.stream_window} < {size}")
            self.load.slot_stopped()
            return
        if size > self.send_window or len(self.inflight) >= self.max_streams:
            self.load.counters[slot] -= 1  # the same request, once there is room
            self.waiting.append(slot)
            return
        self.send_window -= size
        sid = self.next_sid
        self.next_sid += 2
        s4 = sid.to_bytes(4, "big")
        self.out += (self.head, s4, self.block, size.to_bytes(3, "big"), b"\x00\x01", s4, body)
        if self.after is not None:  # the first call (or the first after a table reset)
            self.head, self.block = self.after
            self.after = None
        self.inflight[sid] = (slot, time.perf_counter(), [0])

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def _unblock(self) -> None:
        if self.waiting and time.perf_counter() >= self.load.deadline:
            self._stop_waiting()
        for _ in range(len(self.waiting)):
            if self.closed or not self.waiting:
                break
            self.start(self.waiting.popleft())

    # --- receiving -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while end - pos >= 9:
            size = int.from_bytes(buf[pos : pos + 3], "big")
            if end - pos < 9 + size:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5 : pos + 9], "big") & MAX_WINDOW
            payload = buf[pos + 9 : pos + 9 + size]
            pos += 9 + size
            if kind == DATA:
                self._data(sid, flags, payload)
            elif kind in (HEADERS, CONTINUATION):
                self._headers(kind, sid, flags, payload)
            else:
                self._control(kind, sid, flags, payload)
        self.buf = buf[pos:]
        if self.consumed >= 2**30:
            self.out.append(_frame(WINDOW_UPDATE, 0, 0, self.consumed.to_bytes(4, "big")))
            self.consumed = 0
        self.flush()

    def _data(self, sid: int, flags: int, payload: bytes) -> None:
        self.consumed += len(payload)
        call = self.inflight.get(sid)
        if call is not None:
            call[2][0] += len(payload)
            if flags & END_STREAM:
                self._finish(sid, "stream ended without trailers")

    def _headers(self, kind: int, sid: int, flags: int, payload: bytes) -> None:
        if kind == CONTINUATION:
            if self.continued is None or self.continued[0] != sid:
                self._fail_all("unexpected CONTINUATION")
                return
            self.continued[2].extend(payload)
            sid, flags, block = (
                self.continued[0],
                self.continued[1] | flags,
                bytes(self.continued[2]),
            )
        else:
            start, stop = 0, len(payload)
            if flags & PADDED:
                start, stop = 1, stop - payload[0]
            if flags & PRIORITY:
                start += 5
            block = payload[start:stop]
        if not flags & END_HEADERS:
            self.continued = (sid, flags, bytearray(block))
            return
        self.continued = None
        headers = self._decode(block)
        if not flags & END_STREAM or sid not in self.inflight:
            return  # response headers (kept only to keep the HPACK table in step)
        status = message = http = None
        for name, value in headers:
            if name == b"grpc-status":
                status = value
            elif name == b"grpc-message":
                message = value
            elif name == b":status":
                http = value
        if status == b"0" and self.inflight[sid][2][0] >= 5:  # a message came
            self._finish(sid, None)
        elif status == b"0":
            self._finish(sid, "grpc-status 0 without a response message")
        elif status is None:
            self._finish(sid, f"no grpc-status (HTTP status {http!r})")
        else:
            text = urllib.parse.unquote((message or b"").decode("ascii", "replace"))
            self._finish(sid, f"grpc-status {status.decode()}: {text}")

    def _decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        cached = self.decoded.get(block)
        if cached is not None:
            return cached
        headers: list[tuple[bytes, bytes]] = self.decoder.decode(block, raw=True)  # type: ignore[assignment]
        if block and min(block) >= 0x80:  # only one-byte indexed references: cacheable
            if len(self.decoded) >= 64:
                self.decoded.clear()
            self.decoded[block] = headers
        else:  # may have changed the table, so cached indices may mean something else
            self.decoded.clear()
        return headers

    def _control(self, kind: int, sid: int, flags: int, payload: bytes) -> None:
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload) - 5, 6):
                ident = int.from_bytes(payload[i : i + 2], "big")
                value = int.from_bytes(payload[i + 2 : i + 6], "big")
                if ident == 1 and value < 4096 and not self.table_reset:
                    self._reset_table()
                elif ident == 3:
                    self.max_streams = value
                elif ident == 4:
                    self.stream_window = value
            self.out.append(_frame(SETTINGS, ACK, 0))
            if not self.ready.done():
                self.ready.set_result(None)
            self._unblock()
        elif kind == PING and not flags & ACK:
            self.out.append(_frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE and sid == 0:
            self.send_window += int.from_bytes(payload[:4], "big") & MAX_WINDOW
            self._unblock()
        elif kind == RST_STREAM and sid in self.inflight:
            self._finish(sid, f"RST_STREAM (error code {int.from_bytes(payload[:4], 'big')})")
        elif kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & MAX_WINDOW
            code = int.from_bytes(payload[4:8], "big")
            why = f"GOAWAY (error code {code}, {payload[8:]!r})"
            was_closed, self.closed = self.closed, True
            failed = [s for s in self.inflight if s > last]
            for s in failed:
                self._finish(s, why)
            if not (failed or was_closed) and time.perf_counter() < self.load.deadline:
                self.load.tally.error(f"{why}: its clients stop")  # no call failed: say so
            self._stop_waiting(why)

    def _reset_table(self) -> None:
        """The server shrank our encoder's table: empty it (a size update to 0 leads
        the next block), and send table-free blocks from then on."""
        self.table_reset = True
        reset = b"\x20" + self.blocks.plain
        self.head, self.block = _headers_head(reset), reset
        self.after = (_headers_head(self.blocks.plain), self.blocks.plain)

    def _finish(self, sid: int, error: str | None) -> None:
        slot, t0, _ = self.inflight.pop(sid)
        now = time.perf_counter()
        tally = self.load.tally
        if error is None:
            tally.ok += 1
            tally.latencies.append(now - t0)
        else:
            tally.error(error)
        if now < self.load.deadline:
            self.start(slot)
        else:
            self.load.slot_stopped()
        if self.waiting:
            self._unblock()

    def _fail_all(self, why: str) -> None:
        self.closed = True
        for sid in list(self.inflight):
            self._finish(sid, why)
        self._stop_waiting(why)
        if self.transport is not None:
            self.transport.close()

    def _stop_waiting(self, why: str | None = None) -> None:
        """Stop the slots waiting for room to send: an error if `why` is given."""
        while self.waiting:
            self.waiting.popleft()
            if why is not None:
                self.load.tally.error(why)
            self.load.slot_stopped()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before SETTINGS"))
        why = f"connection lost ({exc or 'closed by the server'})"
        for sid in list(self.inflight):
            self._finish(sid, why)
        self._stop_waiting(why if time.perf_counter() < self.load.deadline else None)


async def run_grpc_load(
    endpoints: Sequence[tuple[str, int]],
    op: str,
    clients: int,
    seconds: float,
    streams_per_conn: int = 16,
    requests: Sequence[bytes] | None = None,
) -> Tally:
    """`clients` closed-loop callers of `op` for `seconds`, spread round-robin over
    `endpoints`, each endpoint's share multiplexed over ceil(share/streams_per_conn)
    connections."""
    loop = asyncio.get_running_loop()
    load = _Load(requests if requests is not None else encode_requests(op), clients)
    slots: list[tuple[_Conn, int]] = []
    conns: list[_Conn] = []
    try:
        for e, (host, port) in enumerate(endpoints):
            mine = list(range(e, clients, len(endpoints)))
            if not mine:
                continue
            blocks = header_blocks(PATHS[op], f"{host}:{port}")
            n = -(-len(mine) // streams_per_conn)
            here = []
            for _ in range(n):
                _, conn = await loop.create_connection(lambda b=blocks: _Conn(load, b), host, port)
                here.append(conn)
            conns += here
            slots += [(here[k % n], slot) for k, slot in enumerate(mine)]
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in conns)), CONNECT_TIMEOUT)
        cpu0, t0 = time.process_time(), time.perf_counter()
        load.deadline = t0 + seconds
        for conn, slot in slots:
            conn.start(slot)
        for conn in conns:
            conn.flush()
        await load.done
        load.tally.elapsed = time.perf_counter() - t0
        load.tally.cpu = time.process_time() - cpu0
    finally:
        for conn in conns:
            if conn.transport is not None:
                conn.transport.close()
    return load.tally
