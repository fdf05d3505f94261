"""A raw HTTP/1.1 client over a plain socket, so the fuzzer controls every byte.

Why not aiohttp or http.client's request API: they refuse (or "fix") exactly what a
fuzzer must send — invalid UTF-8 in the request target, duplicate or malformed
headers, a Content-Encoding the body does not have. Responses are parsed with
http.client.HTTPResponse over the socket; one watchdog timer bounds the whole
exchange, so no request can hang the run.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One HTTP request, byte-exact. `body_expr` is a Python expression that rebuilds
    `body` when the body is too big to print as a literal (e.g. 2,000 nesting levels)."""

    method: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    body_expr: str | None = None
    auto_length: bool = True  # add Content-Length unless a framing header is given

    def wire(self, host: str, port: int) -> bytes:
        """The exact bytes sent: request line, Host, the headers, framing, body."""
        names = {k.lower() for k, _ in self.headers}
        lines = [self.method + b" " + self.target + b" HTTP/1.1"]
        if b"host" not in names:
            lines.append(f"Host: {host}:{port}".encode())
        lines += [k + b": " + v for k, v in self.headers]
        framed = b"content-length" in names or b"transfer-encoding" in names
        if self.auto_length and not framed and (self.body or self.method in (b"POST", b"PUT")):
            lines.append(b"Content-Length: " + str(len(self.body)).encode())
        if b"connection" not in names:
            lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


@dataclass
class Response:
    """What came back. `timed_out`: the watchdog fired before the exchange finished;
    `cut`: a stream we closed on purpose after its window; `error`: a transport error
    (no status line at all, connection refused or reset)."""

    status: int | None = None
    version: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    timed_out: bool = False
    cut: bool = False
    complete: bool = False
    error: str | None = None
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class _Watchdog:
    """Shuts the socket down at a deadline: every blocked send/recv then returns."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


MAX_READ = 4 << 20  # never keep more than this of a response (a snapshot stream, say)


def send(
    req: Request, port: int, *, timeout: float = 10.0, stream_window: float | None = None
) -> Response:
    """Send `req` to 127.0.0.1:`port` and read the answer.

    Unary (stream_window None): the whole response must arrive within `timeout`, or
    the result is `timed_out`. Stream: once the head is in, read for at most
    `stream_window` seconds (stopping at the first body bytes of a 2xx answer) and
    then cut the connection; a head that does not arrive within the window is a cut
    too (etcd sends a stream's head with its first message)."""
    out = Response()
    t0 = time.monotonic()
    limit = timeout if stream_window is None else min(timeout, stream_window)
    try:
        sock = socket.create_connection((HOST, port), timeout=timeout)
    except OSError as e:
        out.error = f"connect: {e!r}"
        return out
    with sock, _Watchdog(sock, limit) as dog:
        # The server may answer (413, 400) before reading everything: read on.
        with contextlib.suppress(OSError):
            sock.sendall(req.wire(HOST, port))
        resp = http.client.HTTPResponse(sock, method=req.method.decode("latin-1"))
        try:
            resp.begin()
            out.status, out.version = resp.status, resp.version
            out.headers = {k.lower(): v for k, v in resp.getheaders()}
            if req.method == b"HEAD":
                out.complete = True
            elif stream_window is not None and 200 <= resp.status < 300:
                out.body = resp.read1(65536) if not resp.isclosed() else b""
                out.cut = not resp.isclosed()
                out.complete = resp.isclosed()
            else:
                chunks = []
                size = 0
                while size < MAX_READ:
                    c = resp.read1(65536)
                    if not c:
                        break
                    chunks.append(c)
                    size += len(c)
                out.body = b"".join(chunks)
                out.complete = size < MAX_READ
        except (OSError, http.client.HTTPException, ValueError) as e:
            if not dog.fired:
                out.error = f"{type(e).__name__}: {e}"
        # A response that was still arriving when the watchdog shut the socket down is a
        # hang for a unary call and a deliberate cut for a stream.
        if dog.fired and stream_window is None:
            out.timed_out, out.complete = True, False
        elif dog.fired and not out.complete:
            out.cut = True
    out.elapsed = time.monotonic() - t0
    return out
