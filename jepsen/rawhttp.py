"""A minimal HTTP/1.1 client on raw asyncio streams, counted, for hostile clients.

Why not aiohttp: a hostile client must do what a polite one never does — set a tiny
socket receive buffer before connecting and then never read, declare a Content-Length
it never reaches, dribble a request head a line at a time, keep a chunked request body
open forever — and every socket must be closable synchronously (``transports``), from
a signal-free stop. Every byte and status is counted in a ``Tally``.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

MiB = 1 << 20
REQUEST_TIMEOUT = 20.0  # s for one request and its answer (big answers take a while)


def head(method: str, path: str, host: str, length: int | None) -> bytes:
    """An HTTP/1.1 request head; ``length=None`` announces a chunked body (a stream
    the client may keep open), and a GET without a body gets no Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
    elif method != "GET" or length:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked request body (never the terminating empty one)."""
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@dataclass
class Tally:
    """What one kind of hostile request did."""

    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    bytes_sent: int = 0
    bytes_received: int = 0
    open: int = 0
    open_max: int = 0

    def opened(self) -> None:
        self.open += 1
        self.open_max = max(self.open_max, self.open)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statuses"] = dict(sorted(self.statuses.items()))
        d["errors"] = dict(sorted(self.errors.items()))
        del d["open"]
        return d


class Conn:
    """One HTTP/1.1 connection on a raw asyncio stream, registered in ``transports``
    (shared by every connection of one owner) so that a stop can abort every socket
    synchronously."""

    def __init__(self, transports: set[asyncio.BaseTransport], url: str, tally: Tally) -> None:
        u = urlsplit(url)
        self.transports, self.tally = transports, tally
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, rcvbuf: int | None = None) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the advertised window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
            self.reader, self.writer = await asyncio.open_connection(sock=sock)
        except BaseException:
            sock.close()
            raise
        self.transports.add(self.writer.transport)
        self.tally.opened()

    @property
    def is_open(self) -> bool:
        return self.writer is not None and not self.writer.transport.is_closing()

    async def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        self.tally.bytes_sent += len(data)
        await self.writer.drain()

    async def response(self, keep: int = 0) -> tuple[int, bytes, bool]:
        """(status, the first ``keep`` bytes of the body, keep-alive); the rest of the
        body is read and counted, never held."""
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        kept = bytearray()
        n = len(raw)

        async def take(size: int) -> None:
            nonlocal n
            while size > 0:
                data = await self.reader.read(min(size, MiB))  # type: ignore[union-attr]
                if not data:
                    raise ConnectionResetError("EOF in body")
                size -= len(data)
                n += len(data)
                if len(kept) < keep:
                    kept.extend(data[: keep - len(kept)])

        if "content-length" in hdrs:
            await take(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                line = await self.reader.readuntil(b"\r\n")
                n += len(line)
                size = int(line.split(b";")[0], 16)
                await take(size + 2)  # the data and its CRLF
                if size == 0:
                    break
        else:
            await take(1 << 62 if status != 204 else 0)
        self.tally.bytes_received += n
        self.tally.statuses[str(status)] += 1
        return status, bytes(kept), hdrs.get("connection", "").lower() != "close"

    async def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        keep: int = 0,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, bytes]:
        """One request on this connection (opened if needed): (status, kept prefix)."""
        if not self.is_open:
            self.close()
            await self.open()
        self.tally.requests += 1
        await self.send(head(method, path, self.hostport, len(body)) + body)
        status, kept, alive = await asyncio.wait_for(self.response(keep), timeout)
        if not alive:
            self.close()
        return status, kept

    async def drain_forever(self) -> None:
        """Read and count whatever the server streams until it closes."""
        assert self.reader is not None
        while data := await self.reader.read(1 << 16):
            self.tally.bytes_received += len(data)

    def close(self) -> None:
        if self.writer is not None:
            self.transports.discard(self.writer.transport)
            self.writer.transport.abort()
            self.writer = self.reader = None
            self.tally.open -= 1
