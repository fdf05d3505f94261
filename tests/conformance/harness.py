"""Servers, raw HTTP clients and normalisation for the etcd differential suite.

A scenario is a plain function that drives a `Target` (a real etcd or raftkv) and
records every answer; the suite runs it against both and compares the records after
`normalise()` has replaced what legitimately differs (ids, term, sizes, hashes,
server-chosen lease ids, remaining TTLs). Streams are read chunk by chunk from a raw
socket because clients depend on the chunk boundaries, which http.client hides.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.integration.cluster import Cluster, free_port

KEPT_HEADERS = (
    "content-type",
    "grpc-metadata-content-type",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "x-content-type-options",
    "transfer-encoding",
    "trailer",
)
ID_FIELDS = {"cluster_id", "member_id"}
SIZE_FIELDS = {"dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "hash"}


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


# --- servers ---------------------------------------------------------------------------


def etcd_binary() -> str | None:
    return shutil.which("etcd")


@contextlib.contextmanager
def run_etcd(root: Path) -> Iterator[int]:
    """A fresh single-member etcd on ephemeral loopback ports; yields the client port."""
    cport, pport = free_port(), free_port()
    exe = etcd_binary()
    assert exe is not None
    data = root / "etcd-data"
    log = open(root / "etcd.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [
            exe,
            "--name",
            "x",
            "--data-dir",
            str(data),
            "--listen-client-urls",
            f"http://127.0.0.1:{cport}",
            "--advertise-client-urls",
            f"http://127.0.0.1:{cport}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{pport}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{pport}",
            "--initial-cluster",
            f"x=http://127.0.0.1:{pport}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_health(cport, lambda b: b.get("health") == "true", proc)
        yield cport
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


@contextlib.contextmanager
def run_raftkv(root: Path, follower: bool = False) -> Iterator[int]:
    """A fresh raftkv (tests/integration's Cluster); yields a client port.

    `follower`: a 3-member cluster, and the port of a follower, so that requests take
    the forwarding paths (proposals, ReadIndex, lease clocks on the leader).
    """
    (root / "raftkv").mkdir(parents=True, exist_ok=True)
    # etcd's --cors defaults to "*"; raftkv's to none (stricter): compare like with like.
    c = Cluster(root / "raftkv", size=3 if follower else 1, extra_args=["--cors", "*"])
    c.start_all()
    try:
        leader = c.wait_leader()
        name = c.followers(leader)[0] if follower else leader
        port = c.members[name].client_port
        _wait_health(port, lambda b: b.get("health") is True, None)
        yield port
    finally:
        c.close()


def _wait_health(port: int, ok: Any, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("server exited during startup")
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            r = conn.getresponse()
            body = json.loads(r.read())
            conn.close()
            if r.status == 200 and ok(body):
                return
        time.sleep(0.1)
    raise RuntimeError(f"no healthy server on port {port}")


# --- raw streaming client -------------------------------------------------------------


class RawStream:
    """One POST on a raw socket; the response body is read chunk by chunk."""

    def __init__(self, port: int, path: str, body: bytes, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.sock.settimeout(timeout)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode() + body)
        self.buf = b""
        raw = self._until(b"\r\n\r\n").decode("latin-1")
        lines = raw.split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        self.ended = False

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _until(self, sep: bytes) -> bytes:
        while sep not in self.buf:
            self._fill()
        out, _, self.buf = self.buf.partition(sep)
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def body(self) -> bytes:
        """The whole body of a non-chunked answer (an error before the stream)."""
        return self._exactly(int(self.headers.get("content-length", "0")))

    def chunk(self, timeout: float) -> bytes | None:
        """The next HTTP chunk; None at the terminating chunk. TimeoutError if none."""
        self.sock.settimeout(timeout)
        size = int(self._until(b"\r\n"), 16)
        data = self._exactly(size + 2)[:-2]
        if size == 0:
            self.ended = True
            return None
        return data

    def messages(self, n: int, timeout: float = 5.0, merge_newline: bool = False) -> list[Any]:
        """`n` stream messages, each checked to be exactly one chunk `JSON\\n`.

        etcd sends a message over 2 KiB as the JSON chunk plus a lone "\\n" chunk;
        `merge_newline` (used for etcd only) joins those before the check.
        """
        out: list[Any] = []
        while len(out) < n:
            c = self.chunk(timeout)
            if c is None:
                break
            if merge_newline and not c.endswith(b"\n"):
                nl = self.chunk(timeout)
                assert nl == b"\n", f"etcd split a message unexpectedly: {nl!r}"
                c += nl
            assert c.endswith(b"\n") and c.count(b"\n") == 1, f"not one message: {c[:200]!r}"
            out.append(json.loads(c))
        return out

    def quiet(self, timeout: float = 0.4) -> str:
        """'open' if nothing more arrives within `timeout`, 'ended' at stream end."""
        try:
            c = self.chunk(timeout)
        except TimeoutError:
            return "open"
        except EOFError:
            return "closed"
        return "ended" if c is None else f"unexpected chunk {c[:100]!r}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# --- targets -----------------------------------------------------------------------------


class Target:
    """A server under test plus the record of everything it answered."""

    def __init__(self, port: int, is_etcd: bool) -> None:
        self.port = port
        self.is_etcd = is_etcd
        self.record: list[list[Any]] = []
        self.aliases: dict[str, str] = {}

    def alias(self, value: Any, name: str) -> None:
        """Server-chosen ids (leases) compared by the name the scenario gives them."""
        self.aliases[str(value)] = name

    def raw(self, method: str, path: str, body: bytes | str | Any = b"") -> dict[str, Any]:
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body or None)
            r = conn.getresponse()
            data = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            conn.close()
        out: dict[str, Any] = {"status": r.status, "headers": _headers(headers)}
        try:
            out["body"] = json.loads(data)
        except ValueError:
            out["body"] = data.decode("utf-8", errors="replace")
        out["content_length"] = "content-length" in headers
        return out

    def call(
        self,
        label: str,
        path: str,
        body: Any = b"",
        method: str = "POST",
        fuzzy_ttl: bool = False,
        alias_id: str | None = None,
        keep_body: bool = True,
        min_ttl: bool = False,
    ) -> dict[str, Any]:
        """Send, record the normalised answer under `label`, return the raw answer.

        `alias_id` names the server-chosen "ID" in the answer (a granted lease)."""
        out = self.raw(method, path, body)
        if alias_id is not None and isinstance(out["body"], dict) and "ID" in out["body"]:
            self.alias(out["body"]["ID"], alias_id)
        if not keep_body:
            out = {**out, "body": "<not compared>"}
        if min_ttl and isinstance(out["body"], dict):
            # documented deviation: the minimum lease TTL is etcd's 2 s, raftkv's 3 s
            # (1.5 x its longest election timeout); both are the server's minimum
            body = dict(out["body"])
            for k in ("TTL", "grantedTTL"):
                if body.get(k) in ("2", "3"):
                    body[k] = "<minimum TTL>"
            out = {**out, "body": body}
        self.note(label, out, fuzzy_ttl)
        return out

    def note(self, label: str, value: Any, fuzzy_ttl: bool = False) -> None:
        self.record.append([label, normalise(value, self.aliases, fuzzy_ttl)])

    def stream(self, path: str, body: bytes | str | Any, head_timeout: float = 5.0) -> RawStream:
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        return RawStream(self.port, path, body, head_timeout)

    def stream_nowait(self, path: str, body: Any) -> socket.socket:
        """Send a request and return the socket without reading an answer."""
        data = json.dumps(body).encode()
        sock = socket.create_connection(("127.0.0.1", self.port), 5)
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n\r\n"
        sock.sendall(head.encode() + data)
        return sock

    def messages(self, s: RawStream, n: int, timeout: float = 5.0) -> list[Any]:
        return s.messages(n, timeout, merge_newline=self.is_etcd)


def _headers(h: dict[str, str]) -> dict[str, str]:
    return {k: h[k] for k in KEPT_HEADERS if k in h}


def normalise(v: Any, aliases: dict[str, str], fuzzy_ttl: bool = False) -> Any:
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        for k, x in v.items():
            if k == "raftkv" and "etcdserver" in v:
                continue  # /version: raftkv adds its own version (a documented difference)
            if k in ID_FIELDS or k == "raft_term" or k == "raftTerm" or k in SIZE_FIELDS:
                out[k] = f"<{k}>"
            elif (k == "leader" and isinstance(x, str)) or (k == "ID" and "peerURLs" in v):
                out[k] = "<member>"
            elif k in ("peerURLs", "clientURLs"):
                out[k] = ["<url>"] * len(x)
            elif k == "name" and "peerURLs" in v:
                out[k] = "<name>"
            elif k in ("leases", "keys") and isinstance(x, list):  # etcd: map order
                out[k] = sorted((normalise(i, aliases) for i in x), key=json.dumps)
            elif k == "TTL" and fuzzy_ttl and "grantedTTL" in v and x != "-1":
                left, granted = int(x), int(v["grantedTTL"])
                out[k] = "<remaining>" if granted - 3 <= left <= granted else x
            else:
                out[k] = normalise(x, aliases, fuzzy_ttl)
        return out
    if isinstance(v, list):
        return [normalise(x, aliases, fuzzy_ttl) for x in v]
    if isinstance(v, str) and v in aliases:
        return f"<{aliases[v]}>"
    return v


def snapshot_shape(messages: list[Any]) -> dict[str, Any]:
    """What a client can check of a snapshot: blob sizes, order and the sha256 trailer."""
    blobs = [base64.b64decode(m["result"].get("blob", "")) for m in messages]
    payload = b"".join(blobs[:-1])
    return {
        "messages_at_least_2": len(blobs) >= 2,
        "blobs_within_32k": all(len(b) <= 32 * 1024 for b in blobs),
        "trailer_is_sha256": bool(blobs) and blobs[-1] == hashlib.sha256(payload).digest(),
        "last_has_no_remaining": "remaining_bytes" not in messages[-1]["result"],
        "others_have_remaining": all("remaining_bytes" in m["result"] for m in messages[:-2]),
    }
