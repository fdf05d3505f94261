"""The ``hostile`` nemesis: clients that send the worst requests a server must survive.

Every request stays inside etcd's documented limits (a request of at most 1.5 MiB, at
most 128 ops per txn, no limit on responses, streams or connections): what lies beyond
them is a fuzzer's job. Shapes, each run during one fault window against every member:

* ``big-writes`` — 1.4 MiB values through ``PUT /v1/kv`` (raw body) and ``POST
  /v3/kv/put`` (base64 JSON), rate-capped, within a byte budget per fault and per run
  (the MVCC history keeps every value until compaction; quota 2 GiB), then deleted.
* ``txn-ranges`` — a few thousand small keys written under a private prefix, then
  txns of 128 prefix ranges over all of them (``/v1/txn``, ``/v3/kv/txn``) and whole
  prefix range reads: the biggest response a request may ask for.
* ``slow-watchers`` — many watch streams on the big writes' prefix whose socket has a
  tiny receive buffer and is never read, while ``big-writes`` runs.
* ``slow-bodies`` — slowloris: bodies whose Content-Length is never reached (all but
  the last byte, or a byte at a time), headers a line at a time, and ``/v3/watch``
  bodies whose first message grows (never past the request limit) and never ends.
* ``stream-flood`` — hundreds of idle connections, watch streams that do read, and
  lease keepalive streams, per member, with a trickle of writes so the watches carry
  events.

The clients speak raw HTTP/1.1 (``jepsen/rawhttp.py``: tiny receive buffers, bodies
short of their Content-Length, streams kept open) and run in a child process
(``python -m jepsen.hostile <plan json>``) so that their CPU never stalls the
harness's own event loop (peer proxies and workload clients): what the workload
measures is the servers, not the harness. The child stops when its stdin closes at the
fault's end: it closes every socket, deletes what it wrote, and prints one JSON report.
In ``final_heal`` and ``close`` an ``abort`` line first makes it skip the deletion (the
loop that carries the cluster's peer traffic is blocked then). A watchdog thread ends
it at its deadline if the parent never closes the pipe. Nothing is ever signalled.
Hostile traffic is never recorded in the workload's history: the report goes to
nemesis.jsonl, with what the parent observed meanwhile (RSS from /proc, term and
leader of every member).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import string
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jepsen.rawhttp import Conn, Tally, chunk, head

if TYPE_CHECKING:
    from jepsen.cluster import Cluster

SHAPES = ["big-writes", "txn-ranges", "slow-watchers", "slow-bodies", "stream-flood"]

MiB = 1 << 20
MAX_REQUEST = 3 * 512 * 1024  # etcd's --max-request-bytes default (1.5 MiB)
MAX_TXN_OPS = 128  # etcd's --max-txn-ops default
BIG_VALUE = MAX_REQUEST - 100 * 1024  # 1.4 MiB: key, framing and proto overhead still fit
BIG_RATE = 16.0  # big writes per second over all members (22 MiB/s)
BIG_BUDGET = 256 * MiB  # big-write bytes per fault...
RUN_BUDGET = 640 * MiB  # ...and per run: well under the 2 GiB quota, history included
BIG_KEYS = 4  # keys each big writer cycles through (the live data set stays small)
ROWS = 3000  # keys under the txn-ranges prefix
ROW_VALUE = 100  # bytes per row: a 128-range txn answers ~128 x 3000 rows
SLOW_WATCHERS = 40  # per member and API
SLOW_RCVBUF = 4096  # bytes: the slow watchers' socket receive buffer
STALLED_BODIES = 40  # per member and API: all but the last byte of a 1.4 MiB body
TRICKLE_BODIES = 20  # per member and API: a byte every TRICKLE_S
TRICKLE_S = 0.5
SLOW_HEADERS = 10  # per member: a header line every second, never the blank line
GROWING_WATCHES = 12  # per member: /v3/watch bodies whose first message never ends
DRIP = 4096  # bytes of key per drip of a growing watch body...
DRIP_S = 0.02  # ...every 20 ms (200 KiB/s), up to BIG_VALUE per stream
IDLE_CONNS = 300  # per member: connected, silent
FLOOD_WATCHES = 150  # per member and API: watch streams that read
FLOOD_WATCHERS_PER_STREAM = 4  # create_requests per /v3/watch stream
KEEPALIVE_STREAMS = 50  # per member: /v3/lease/keepalive streams, one lease each
KEEPALIVE_S = 0.5
FLOOD_WRITE_RATE = 25.0  # small writes per second on the flood prefix
CLEANUP_TIMEOUT = 15.0  # s to delete what the fault wrote and revoke its leases
GRACE = 30.0  # s past the plan's duration at which the child's watchdog ends it
LETTERS = (string.ascii_letters + string.digits).encode()


def prefix_end(p: bytes) -> bytes:
    """etcd's range_end for a prefix: the prefix with its last byte incremented."""
    b = bytearray(p)
    while b and b[-1] == 0xFF:
        b.pop()
    if not b:
        return b"\x00"
    b[-1] += 1
    return bytes(b)


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def jbytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Plan:
    """What the parent hands the child (as JSON on its command line)."""

    shape: str
    urls: dict[str, str]  # member name -> client URL
    tag: str  # keys live under hostile/<tag>/
    apis: list[str]  # ["v1", "v3"] for raftkv, ["v3"] for etcd
    seed: int
    budget: int  # big-write bytes this fault may send
    duration: float  # the fault's length; the watchdog fires at duration + GRACE

    @property
    def prefix(self) -> bytes:
        return f"hostile/{self.tag}/".encode()


# --- the pieces every request builder uses ------------------------------------------


def v3_put(key: bytes, value: bytes) -> bytes:
    return jbytes({"key": b64(key), "value": b64(value)})


def v1_txn_ranges(prefix: bytes) -> bytes:
    """A native txn of MAX_TXN_OPS prefix ranges over ``prefix``."""
    op = {"range": {"key": prefix.decode(), "prefix": True}}
    return jbytes({"compare": [], "success": [op] * MAX_TXN_OPS, "failure": []})


def v3_txn_ranges(prefix: bytes) -> bytes:
    op = {"request_range": {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}}
    return jbytes({"success": [op] * MAX_TXN_OPS})


def v1_txn_puts(kvs: list[tuple[bytes, bytes]]) -> bytes:
    ops = [{"put": {"key": k.decode(), "value": v.decode()}} for k, v in kvs]
    return jbytes({"compare": [], "success": ops, "failure": []})


def v3_txn_puts(kvs: list[tuple[bytes, bytes]]) -> bytes:
    ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in kvs]
    return jbytes({"success": ops})


def growing_watch_body(prefix: bytes) -> list[bytes]:
    """The pieces of a /v3/watch body whose first message, a create_request, grows DRIP
    bytes at a time (base64 of "AAA...", so the key stays valid) and never ends; all
    of it stays below BIG_VALUE, inside the request limit."""
    first = b'{"create_request":{"key":"' + b64(prefix).encode()
    drip = b"QUFB" * (DRIP // 4)
    return [first] + [drip] * ((BIG_VALUE - len(first)) // DRIP)


def v3_watch_create(prefix: bytes, watch_id: int = 0) -> bytes:
    req: dict[str, Any] = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
    if watch_id:
        req["watch_id"] = watch_id
    return jbytes({"create_request": req})


# --- the child ------------------------------------------------------------------------


class Hostile:
    """The child's side: the shape's clients, their tallies, and their cleanup."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.tallies: dict[str, Tally] = {}
        self.transports: set[asyncio.BaseTransport] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.big_sent = 0  # value bytes of big writes sent
        self.notes: dict[str, Any] = {}
        self.leases: dict[str, list[str]] = {}  # member -> lease ids to revoke
        self.cleaned: dict[str, Any] = {}
        self.stopping = False
        self.t0 = time.monotonic()

    def tally(self, label: str) -> Tally:
        return self.tallies.setdefault(label, Tally())

    def spawn(self, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    @property
    def members(self) -> list[tuple[str, str]]:
        return sorted(self.plan.urls.items())

    def start(self) -> None:
        shape = self.plan.shape
        if shape in ("big-writes", "slow-watchers"):
            self._big_writes()
        if shape == "slow-watchers":
            self._slow_watchers()
        elif shape == "txn-ranges":
            self.spawn(self._txn_ranges())
        elif shape == "slow-bodies":
            self._slow_bodies()
        elif shape == "stream-flood":
            self.spawn(self._stream_flood())

    async def stop(self) -> None:
        """Cancel every client, then close every socket. Python 3.11's wait_for can
        swallow a cancellation that lands as its inner call completes, so the loops
        also check ``stopping``, and a client still running after 5 s is left behind
        with its socket closed under it."""
        self.stopping = True
        for t in self.tasks:
            t.cancel()
        _, pending = await asyncio.wait(self.tasks, timeout=5.0) if self.tasks else ((), ())
        if pending:
            self.notes["clients_not_cancelled"] = len(pending)
        self.abort()

    def abort(self) -> None:
        for t in list(self.transports):
            t.abort()
        self.transports.clear()

    async def _loop(
        self, label: str, url: str, one: Callable[[Conn], Awaitable[None]], pace: float = 0.0
    ) -> None:
        """Call ``one`` again and again on a kept connection; an error is counted and
        the connection replaced after a short pause (a refused node stays refused)."""
        tally = self.tally(label)
        conn = Conn(self.transports, url, tally)
        try:
            while not self.stopping:
                t0 = time.monotonic()
                try:
                    await one(conn)
                except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as e:
                    tally.errors[type(e).__name__] += 1
                    conn.close()
                    await asyncio.sleep(0.2)
                except ValueError as e:  # an answer we could not parse
                    tally.errors[f"ValueError: {e}"[:80]] += 1
                    conn.close()
                    await asyncio.sleep(0.2)
                if pace:
                    await asyncio.sleep(max(0.0, pace - (time.monotonic() - t0)))
        finally:
            conn.close()

    # --- big writes ---

    def _big_writes(self) -> None:
        base = bytes(self.rng.choice(LETTERS) for _ in range(4096))
        value = (base * (BIG_VALUE // len(base) + 1))[:BIG_VALUE]
        rest = value[15:]  # the first 15 bytes vary: base64 splits cleanly at 3
        rest64 = b64(rest).encode()
        writers = [(m, api) for m, _ in self.members for api in self.plan.apis]
        pace = len(writers) / BIG_RATE
        for i, (m, api) in enumerate(writers):
            key = self.plan.prefix + f"big/{m}-{api}/".encode()

            async def one(c: Conn, key: bytes = key, api: str = api, i: int = i) -> None:
                if self.big_sent + BIG_VALUE > self.plan.budget:
                    self.notes["big_budget_exhausted_at_s"] = round(time.monotonic() - self.t0, 2)
                    await asyncio.sleep(3600)
                self.big_sent += BIG_VALUE
                n = c.tally.requests
                k = key + str(n % BIG_KEYS).encode()
                stamp = f"{i:03d}{n:012d}".encode()
                if api == "v1":
                    await c.call("PUT", "/v1/kv/" + k.decode(), stamp + rest)
                else:
                    body = b'{"key":"%s","value":"%s%s"}' % (
                        b64(k).encode(),
                        b64(stamp).encode(),
                        rest64,
                    )
                    await c.call("POST", "/v3/kv/put", body)

            self.spawn(self._loop(f"big-put-{api}", self.plan.urls[m], one, pace))

    # --- txn ranges ---

    async def _txn_ranges(self) -> None:
        rows = self.plan.prefix + b"rows/"
        t0 = time.monotonic()
        await self._populate(rows)
        self.notes["populate_s"] = round(time.monotonic() - t0, 2)
        v1_txn, v3_txn = v1_txn_ranges(rows), v3_txn_ranges(rows)
        v3_range = jbytes({"key": b64(rows), "range_end": b64(prefix_end(rows))})
        for _, url in self.members:
            for api in self.plan.apis:
                if api == "v1":
                    txn = self._caller("POST", "/v1/txn", v1_txn)
                    rng = self._caller("GET", "/v1/kv/" + rows.decode() + "?prefix", b"")
                else:
                    txn = self._caller("POST", "/v3/kv/txn", v3_txn)
                    rng = self._caller("POST", "/v3/kv/range", v3_range)
                self.spawn(self._loop(f"txn-128-ranges-{api}", url, txn))
                self.spawn(self._loop(f"prefix-range-{api}", url, rng))
        await asyncio.Event().wait()

    def _caller(self, method: str, path: str, body: bytes) -> Callable[[Conn], Awaitable[None]]:
        async def one(c: Conn) -> None:
            await c.call(method, path, body)

        return one

    async def _populate(self, rows: bytes) -> None:
        """ROWS keys in txns of MAX_TXN_OPS puts, through whichever member answers."""
        tally = self.tally("populate")
        value = bytes(self.rng.choice(LETTERS) for _ in range(ROW_VALUE))
        kvs = [(rows + f"{i:05d}".encode(), value) for i in range(ROWS)]
        api = self.plan.apis[0]
        conns = [Conn(self.transports, url, tally) for _, url in self.members]
        try:
            for i in range(0, ROWS, MAX_TXN_OPS):
                part = kvs[i : i + MAX_TXN_OPS]
                body = v1_txn_puts(part) if api == "v1" else v3_txn_puts(part)
                for attempt in range(20):
                    c = conns[attempt % len(conns)]
                    try:
                        path = "/v1/txn" if api == "v1" else "/v3/kv/txn"
                        if (await c.call("POST", path, body))[0] == 200:
                            break
                    except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as e:
                        tally.errors[type(e).__name__] += 1
                        c.close()
                    await asyncio.sleep(0.1)
        finally:
            for c in conns:
                c.close()
        self.notes["rows"] = ROWS

    # --- slow watchers ---

    def _slow_watchers(self) -> None:
        prefix = self.plan.prefix + b"big/"
        for _, url in self.members:
            for api in self.plan.apis:
                for _ in range(SLOW_WATCHERS):
                    self.spawn(self._slow_watch(url, api, prefix))

    async def _slow_watch(self, url: str, api: str, prefix: bytes) -> None:
        """A watch whose socket is never read: the server's writes must back up."""
        c = Conn(self.transports, url, self.tally(f"slow-watch-{api}"))
        try:
            await c.open(rcvbuf=SLOW_RCVBUF)
            c.tally.requests += 1
            if api == "v1":
                path = "/v1/watch/" + prefix.decode() + "?prefix"
                await c.send(head("GET", path, c.hostport, 0))
            else:
                await c.send(head("POST", "/v3/watch", c.hostport, None))
                await c.send(chunk(v3_watch_create(prefix) + b"\n"))
            assert c.writer is not None
            c.writer.transport.pause_reading()  # type: ignore[attr-defined]
            await asyncio.Event().wait()
        except OSError as e:
            c.tally.errors[type(e).__name__] += 1
        finally:
            c.close()

    # --- slow bodies ---

    def _slow_bodies(self) -> None:
        for m, url in self.members:
            for api in self.plan.apis:
                for i in range(STALLED_BODIES):
                    self.spawn(self._stalled_body(url, api, f"{m}-{api}-{i}"))
                for i in range(TRICKLE_BODIES):
                    self.spawn(self._trickle_body(url, api, f"{m}-{api}-{i}"))
            for _ in range(SLOW_HEADERS):
                self.spawn(self._slow_headers(url))
            if "v3" in self.plan.apis:
                for _ in range(GROWING_WATCHES):
                    self.spawn(self._growing_watch(url))

    async def _held(self, label: str, url: str, send: Callable[[Conn], Awaitable[None]]) -> None:
        """Open a connection and let ``send`` do its slow part, holding the connection
        to the fault's end. A server that answers or hangs up meanwhile (it gave up on
        us) is counted, and a new connection takes the old one's place a second later."""
        tally = self.tally(label)
        while not self.stopping:
            c = Conn(self.transports, url, tally)
            try:
                await c.open()
                tally.requests += 1
                answer = asyncio.ensure_future(c.response())
                sender = asyncio.ensure_future(send(c))
                try:
                    await asyncio.wait({answer})
                finally:
                    sender.cancel()
                    answer.cancel()
                await answer  # raises when the server closed without an answer
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as e:
                tally.errors[type(e).__name__] += 1
            finally:
                c.close()
            await asyncio.sleep(1.0)

    async def _stalled_body(self, url: str, api: str, name: str) -> None:
        """All but the last byte of a 1.4 MiB body: the server holds the rest forever."""
        key = self.plan.prefix + f"stalled/{name}".encode()
        value = b"s" * BIG_VALUE
        if api == "v1":
            req = head("PUT", "/v1/kv/" + key.decode(), "x", BIG_VALUE) + value
        else:
            body = v3_put(key, value)
            req = head("POST", "/v3/kv/put", "x", len(body)) + body

        async def send(c: Conn) -> None:
            await c.send(req[:-1])

        await self._held(f"stalled-body-{api}", url, send)

    async def _trickle_body(self, url: str, api: str, name: str) -> None:
        """A 1 MiB Content-Length, sent one byte every TRICKLE_S."""
        key = self.plan.prefix + f"trickle/{name}".encode()
        path = "/v1/kv/" + key.decode() if api == "v1" else "/v3/kv/put"
        method = "PUT" if api == "v1" else "POST"
        first = b"" if api == "v1" else b'{"key":"' + b64(key).encode() + b'","value":"'

        async def send(c: Conn) -> None:
            await c.send(head(method, path, c.hostport, MiB) + first)
            while True:
                await asyncio.sleep(TRICKLE_S)
                await c.send(b"A")

        await self._held(f"trickle-body-{api}", url, send)

    async def _slow_headers(self, url: str) -> None:
        """A request head a line per second, never finished (classic slowloris)."""

        async def send(c: Conn) -> None:
            await c.send(f"GET /v1/status HTTP/1.1\r\nHost: {c.hostport}\r\n".encode())
            for i in range(3600):
                await asyncio.sleep(1.0)
                await c.send(f"X-Hostile-{i}: {'h' * 32}\r\n".encode())

        await self._held("slow-headers", url, send)

    async def _growing_watch(self, url: str) -> None:
        """A /v3/watch body whose first message never ends (``growing_watch_body``)."""
        parts = list(growing_watch_body(self.plan.prefix + b"growing/"))

        async def send(c: Conn) -> None:
            await c.send(head("POST", "/v3/watch", c.hostport, None))
            await c.send(chunk(parts[0]))
            for part in parts[1:]:
                await asyncio.sleep(DRIP_S)
                await c.send(chunk(part))
            self.notes["growing_watch_reached_limit"] = True

        await self._held("growing-watch-v3", url, send)

    # --- stream flood ---

    async def _stream_flood(self) -> None:
        prefix = self.plan.prefix + b"flood/"
        gate = asyncio.Semaphore(64)  # connects in flight: a flood, not a SYN storm
        for m, url in self.members:
            for _ in range(IDLE_CONNS):
                self.spawn(self._idle(url, gate))
            for api in self.plan.apis:
                for _ in range(FLOOD_WATCHES):
                    self.spawn(self._reading_watch(url, api, prefix, gate))
            if "v3" in self.plan.apis:
                for _ in range(KEEPALIVE_STREAMS):
                    self.spawn(self._keepalive_stream(m, url, gate))
        api = self.plan.apis[0]
        n = 0

        async def one(c: Conn) -> None:
            nonlocal n
            n += 1
            key = prefix + str(n % 50).encode()
            if api == "v1":
                await c.call("PUT", "/v1/kv/" + key.decode(), b"flood")
            else:
                await c.call("POST", "/v3/kv/put", v3_put(key, b"flood"))

        url = self.members[0][1]
        self.spawn(self._loop(f"flood-put-{api}", url, one, 1 / FLOOD_WRITE_RATE))
        await asyncio.Event().wait()

    async def _idle(self, url: str, gate: asyncio.Semaphore) -> None:
        c = Conn(self.transports, url, self.tally("idle-conn"))
        try:
            async with gate:
                await c.open()
            c.tally.requests += 1
            await c.drain_forever()
            c.tally.errors["closed by server"] += 1
            await asyncio.Event().wait()
        except OSError as e:
            c.tally.errors[type(e).__name__] += 1
        finally:
            c.close()

    async def _reading_watch(
        self, url: str, api: str, prefix: bytes, gate: asyncio.Semaphore
    ) -> None:
        c = Conn(self.transports, url, self.tally(f"flood-watch-{api}"))
        try:
            async with gate:
                await c.open()
                c.tally.requests += 1
                if api == "v1":
                    path = "/v1/watch/" + prefix.decode() + "?prefix"
                    await c.send(head("GET", path, c.hostport, 0))
                else:
                    await c.send(head("POST", "/v3/watch", c.hostport, None))
                    msgs = b"".join(
                        v3_watch_create(prefix, 0) + b"\n" for _ in range(FLOOD_WATCHERS_PER_STREAM)
                    )
                    await c.send(chunk(msgs))
            await c.drain_forever()
            c.tally.errors["closed by server"] += 1
            await asyncio.Event().wait()
        except OSError as e:
            c.tally.errors[type(e).__name__] += 1
        finally:
            c.close()

    async def _keepalive_stream(self, member: str, url: str, gate: asyncio.Semaphore) -> None:
        """Grant a lease, then keep it alive on a /v3/lease/keepalive stream."""
        c = Conn(self.transports, url, self.tally("keepalive-stream-v3"))
        g = Conn(self.transports, url, self.tally("lease-grant-v3"))
        try:
            async with gate:
                _, answer = await g.call("POST", "/v3/lease/grant", jbytes({"TTL": 30}), keep=4096)
                g.close()
                lid = str(json.loads(answer).get("ID", ""))
                if not lid:
                    raise ValueError("lease grant without an ID")
                self.leases.setdefault(member, []).append(lid)
                await c.open()
            c.tally.requests += 1
            await c.send(head("POST", "/v3/lease/keepalive", c.hostport, None))
            reader = asyncio.ensure_future(c.drain_forever())
            try:
                while not reader.done():
                    await c.send(chunk(jbytes({"ID": lid}) + b"\n"))
                    await asyncio.sleep(KEEPALIVE_S)
            finally:
                reader.cancel()
            c.tally.errors["closed by server"] += 1
            await asyncio.Event().wait()
        except (OSError, EOFError, TimeoutError, ValueError, asyncio.IncompleteReadError) as e:
            c.tally.errors[type(e).__name__] += 1
        finally:
            g.close()
            c.close()

    # --- the end ---

    async def _until_ok(
        self, tally: Tally, deadline: float, method: str, path: str, body: bytes = b""
    ) -> bool:
        """One request, tried on each member in turn (0.3 s apart) until one answers
        200 or 404 (True) or the deadline passes (False): a leaderless cluster is
        waited for, within bounds."""
        urls = [u for _, u in self.members]
        attempt = 0
        while (left := deadline - time.monotonic()) > 0:
            c = Conn(self.transports, urls[attempt % len(urls)], tally)
            attempt += 1
            try:
                status, _ = await asyncio.wait_for(
                    c.call(method, path, body, timeout=min(5.0, left)), left
                )
                if status in (200, 404):
                    return True
            except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError) as e:
                tally.errors[type(e).__name__] += 1
            finally:
                c.close()
            await asyncio.sleep(0.3)
        return False

    async def cleanup(self) -> None:
        """Delete everything under the fault's prefix and revoke its leases, through
        whichever member answers, for at most CLEANUP_TIMEOUT; what got done is in
        ``self.cleaned``."""
        deadline = time.monotonic() + CLEANUP_TIMEOUT
        tally = self.tally("cleanup")
        p = self.plan.prefix
        if self.plan.apis[0] == "v1":
            done = await self._until_ok(tally, deadline, "DELETE", f"/v1/kv/{p.decode()}?prefix")
        else:
            body = jbytes({"key": b64(p), "range_end": b64(prefix_end(p))})
            done = await self._until_ok(tally, deadline, "POST", "/v3/kv/deleterange", body)
        if done:
            self.cleaned["deleted_prefix"] = p.decode()
        lids = [lid for ids in self.leases.values() for lid in ids]
        revoked = 0
        for lid in lids:
            body = jbytes({"ID": lid})
            revoked += await self._until_ok(tally, deadline, "POST", "/v3/lease/revoke", body)
        if lids:
            self.cleaned["leases_revoked"] = revoked
        if not done or revoked < len(lids):
            self.cleaned["error"] = f"cleanup unfinished after {CLEANUP_TIMEOUT} s"

    def report(self) -> dict[str, Any]:
        clients = {k: t.as_dict() for k, t in sorted(self.tallies.items())}
        work = {k: t for k, t in self.tallies.items() if k not in ("cleanup", "populate")}
        statuses: Counter[str] = Counter()
        for t in work.values():
            statuses.update(t.statuses)
        return {
            "clients": clients,
            "requests": sum(t.requests for t in work.values()),
            "statuses": dict(sorted(statuses.items())),
            "bytes_sent": sum(t.bytes_sent for t in work.values()),
            "bytes_received": sum(t.bytes_received for t in work.values()),
            "big_value_bytes": self.big_sent,
            **self.notes,
        }


async def _child(plan: Plan) -> dict[str, Any]:
    """Run the shape until stdin closes (or the deadline), then clean up and report.
    An ``abort`` line before the close skips the cleanup: the parent is tearing the
    cluster down and cannot wait for it."""
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    h = Hostile(plan)
    h.start()
    _note(h, f"started against {sorted(plan.urls)} via {plan.apis}")
    said = b""
    with contextlib.suppress(TimeoutError):
        said = await asyncio.wait_for(stdin.read(), plan.duration + GRACE / 2)
    t_stop = time.monotonic()
    _note(h, f"stopping ({len(h.tasks)} tasks, {len(h.transports)} sockets)")
    await h.stop()
    _note(h, "clients stopped, sockets closed")
    if b"abort" in said:
        h.cleaned["skipped"] = "aborted"
    else:
        await h.cleanup()  # bounded by its own deadline
    cleanup = h.cleaned
    _note(h, f"cleanup: {cleanup}")
    h.abort()
    out = h.report()
    out["ran_s"] = round(t_stop - h.t0, 2)
    out["cleanup"] = {**cleanup, "took_s": round(time.monotonic() - t_stop, 2)}
    return out


def _note(h: Hostile, what: str) -> None:
    """A line in the child's log (stderr), for a stop that takes long."""
    print(f"[{time.monotonic() - h.t0:7.2f}s] {h.plan.shape} {h.plan.tag}: {what}", file=sys.stderr)


def main(argv: list[str]) -> None:
    plan = Plan(**json.loads(argv[0]))
    # The watchdog: whatever happens to the parent, the child ends by itself.
    timer = threading.Timer(plan.duration + GRACE + CLEANUP_TIMEOUT, os._exit, (3,))
    timer.daemon = True
    timer.start()
    try:
        out = asyncio.run(_child(plan))
    except Exception as e:  # noqa: BLE001 - the parent logs whatever went wrong
        out = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


# --- the parent: spawn, observe, stop ----------------------------------------------------


def rss_mib(pid: int | None) -> float | None:
    """A process's resident set from /proc, in MiB (None if it is gone)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class HostileClients:
    """The nemesis's side: one child per fault, and what the cluster looked like
    meanwhile (RSS, terms, leaders) for the fault's log record."""

    def __init__(self, cluster: Cluster, clock: Callable[[], float], log_dir: Path) -> None:
        self.cluster = cluster
        self.clock = clock
        self.log_dir = log_dir
        self.spent = 0  # big-write bytes sent so far in this run
        self.count = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.monitor: asyncio.Task[dict[str, Any]] | None = None
        self._stop = asyncio.Event()
        self.shape = ""

    def _apis(self) -> list[str]:
        from jepsen.etcd import EtcdCluster  # etcd has no /v1 API

        return ["v3"] if isinstance(self.cluster, EtcdCluster) else ["v1", "v3"]

    def _pid(self, name: str) -> int | None:
        p = self.cluster.nodes[name].proc
        return p.pid if p is not None and p.poll() is None else None

    async def start(
        self, shape: str, duration: float, pick: int, targets: list[str]
    ) -> dict[str, Any]:
        self.count += 1
        self.shape = shape
        plan = Plan(
            shape=shape,
            urls={n: self.cluster.nodes[n].url for n in targets},
            tag=f"f{self.count}-{pick % 100000}",
            apis=self._apis(),
            seed=pick,
            budget=max(0, min(BIG_BUDGET, RUN_BUDGET - self.spent)),
            duration=duration,
        )
        self._stop = asyncio.Event()
        self.monitor = asyncio.ensure_future(self._observe(targets))
        root = Path(__file__).resolve().parents[1]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"hostile-{plan.tag}.log", "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jepsen.hostile", json.dumps(asdict(plan))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
            )
        return {
            "tag": plan.tag,
            "apis": plan.apis,
            "budget_mib": plan.budget // MiB,
            "pid": self.proc.pid,
        }

    async def _observe(self, names: list[str]) -> dict[str, Any]:
        """Sample every member's RSS, term and leader twice a second until stopped. The
        leader of a sample is the one member that says it leads (leader_name is its
        own): a leader that stepped down while its followers still name it counts as
        none."""
        c = self.cluster
        pids = {n: self._pid(n) for n in names}
        before = {n: rss_mib(p) for n, p in pids.items()}
        peak: dict[str, float] = {}
        terms: list[int] = []
        leaders: list[str | None] = []
        silent: Counter[str] = Counter()
        samples = leaderless = 0
        while True:
            sts = await asyncio.gather(*(c.status(n) for n in names))
            samples += 1
            for n, st in zip(names, sts, strict=True):
                if st is None:
                    silent[n] += 1
                    continue
                term = st.get("term") or int(st.get("raw", {}).get("raftTerm", 0) or 0)
                terms.append(int(term))
            claim = [n for n, st in zip(names, sts, strict=True) if st and st["leader_name"] == n]
            leader = claim[0] if len(claim) == 1 else None
            leaderless += leader is None
            if not leaders or leaders[-1] != leader:
                leaders.append(leader)
            for n, p in pids.items():
                r = rss_mib(p)
                if r is not None:
                    peak[n] = max(peak.get(n, 0.0), r)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.5)
            if self._stop.is_set():
                break
        named = [x for x in leaders if x]  # a leaderless stretch is not a change
        after = {n: rss_mib(p) for n, p in pids.items()}
        return {
            "rss_mib_before": before,
            "rss_mib_peak": {n: max(peak.get(n, 0.0), after[n] or 0.0) for n in names},
            "rss_mib_after": after,
            "term_first_seen": terms[0] if terms else None,
            "term_last_seen": max(terms) if terms else None,
            "leaders_seen": leaders,
            "leader_changes": sum(1 for a, b in zip(named, named[1:], strict=False) if a != b),
            "leaderless_samples": leaderless,
            "status_unanswered": dict(silent),
            "samples": samples,
        }

    async def stop(self) -> dict[str, Any]:
        """Close the child's stdin, wait for its report (it cleans up first)."""
        proc, self.proc = self.proc, None
        out: dict[str, Any] = {}
        if proc is not None:
            assert proc.stdin is not None and proc.stdout is not None
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                raw = await asyncio.wait_for(
                    asyncio.to_thread(proc.stdout.read), CLEANUP_TIMEOUT + 10
                )
                out.update(json.loads(raw.decode() or "{}"))
            except (TimeoutError, ValueError) as e:
                out["child_error"] = f"no report: {type(e).__name__}: {e}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                out["exit_code"] = await asyncio.to_thread(proc.wait, 5)
        self._stop.set()
        if self.monitor is not None:
            out["observed"] = await self.monitor
            self.monitor = None
        self.spent += int(out.get("big_value_bytes", 0))
        print(f"[{self.clock():6.1f}s] hostile:{self.shape}: {summary(out)}")
        return out

    def abort(self) -> None:
        """Synchronous stop for final_heal/close, when a fault's own stop never ran:
        the child closes every socket and exits without cleaning up (this may block
        the loop that carries the cluster's peer traffic, so nothing can commit now;
        at worst its watchdog ends it)."""
        proc, self.proc = self.proc, None
        if self.monitor is not None:
            self.monitor.cancel()
            self.monitor = None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.write(b"abort\n")
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        print(f"[{self.clock():6.1f}s] hostile:{self.shape}: aborted, exit {proc.returncode}")


def summary(out: dict[str, Any]) -> str:
    """One line for the console: requests, statuses, bytes, and what it cost."""
    if "error" in out or "child_error" in out:
        return f"ERROR {out.get('error') or out.get('child_error')}"
    obs = out.get("observed", {})
    rss = ", ".join(
        f"{n} {obs['rss_mib_before'].get(n)}->{obs['rss_mib_peak'].get(n)} MiB"
        for n in sorted(obs.get("rss_mib_before", {}))
    )
    return (
        f"{out.get('requests', 0)} requests {out.get('statuses', {})}, "
        f"{out.get('bytes_sent', 0) / MiB:.0f} MiB sent, "
        f"{out.get('bytes_received', 0) / MiB:.0f} MiB received; "
        f"leaders {obs.get('leaders_seen')}, terms {obs.get('term_first_seen')}->"
        f"{obs.get('term_last_seen')}; RSS peak {rss}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
