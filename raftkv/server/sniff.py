"""One client port for HTTP/1.1 (the /v1 API and the JSON gateway) and gRPC (HTTP/2).

etcd serves both on its client URL (cmux); so must we, or `etcdctl --endpoints=<the
URL make run prints>` does not work. A gRPC client opens with HTTP/2's fixed preface
(`PRI * HTTP/2.0...`, no h2c Upgrade), an HTTP/1.1 client with a request line, so the
first bytes decide: the transport is handed to grpclib's HTTP/2 protocol or to
aiohttp's, and the bytes read so far are replayed into it. A connection that sends
nothing decisive within `DECIDE_TIMEOUT` is closed (no member may be held by idle
sockets that never say what they are).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DECIDE_TIMEOUT = 10.0

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class Sniffer(asyncio.Protocol):
    """Reads until the first bytes tell HTTP/2 from HTTP/1.x, then steps aside."""

    def __init__(self, http1: ProtocolFactory, http2: ProtocolFactory) -> None:
        self._http1 = http1
        self._http2 = http2
        self._buf = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._timer = asyncio.get_running_loop().call_later(DECIDE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._buf.startswith(PREFACE):
            self._hand_over(self._http2)
        elif not PREFACE.startswith(self._buf[: len(PREFACE)]):
            self._hand_over(self._http1)
        # else: a prefix of the preface so far; wait for more

    def eof_received(self) -> bool | None:
        if not self._buf:
            return None  # closed before a byte: nothing to answer
        proto = self._hand_over(self._http1)  # a request cut short: let aiohttp answer
        return proto.eof_received() if isinstance(proto, asyncio.Protocol) else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _hand_over(self, factory: ProtocolFactory) -> asyncio.BaseProtocol:
        assert self._transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        proto = factory()
        t = self._transport
        t.set_protocol(proto)
        proto.connection_made(t if factory is self._http1 else CoalescingWriter(t))
        buf, self._buf = self._buf, b""
        if buf and isinstance(proto, asyncio.Protocol):
            proto.data_received(buf)
        return proto


class CoalescingWriter:
    """The transport grpclib writes through: its writes within one event-loop turn go
    out as one send. grpclib writes a response's headers, message and trailers
    separately (three syscalls per unary call, the largest single cost of a gRPC
    request on the profile); batching them keeps the bytes and their order."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._t = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, chunks: list[bytes]) -> None:
        for c in chunks:
            self.write(c)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._t.is_closing():
                self._t.write(data)

    def close(self) -> None:
        self._flush()
        self._t.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._t, name)  # everything else is the real transport's


async def serve(
    host: str | None, port: int, http1: ProtocolFactory, http2: ProtocolFactory
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: Sniffer(http1, http2), host, port, reuse_address=True)
