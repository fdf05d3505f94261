"""`python -m raftkv.bench` (`make bench`): throughput and latency of a local cluster.

Starts a fresh 3-node raftkv cluster on ephemeral loopback ports (or, with
`--db etcd`, a 3-node etcd cluster from the `etcd` binary) and drives it with puts,
linearizable gets and serializable gets of 256-byte values at several concurrency
levels, printing ops/s, p50 and p99, errors, and what the generator itself cost.
Each cell runs once per API (`--api`), alternating: `http` is raftkv's /v1 API,
`gateway` etcd's v3 JSON gateway (/v3/kv/put, /v3/kv/range: raftkv's and etcd's),
`grpc` etcd's v3 gRPC API (KV/Put, KV/Range) on the same client port; etcd has no
/v1, so it runs gateway and grpc only.

The load generators are deliberately cheap: one process on uvloop; HTTP/1.1 with raw
streams, one keep-alive connection per client, requests pre-encoded; gRPC with a
minimal HTTP/2 client of our own (bench_grpc.py says why). On a 2-core machine every
microsecond the generator spends is taken from the servers it measures, so each row
reports the generator's CPU per operation (gen us/op) and in cores (gen cpu), and the
servers' CPU per operation (servers us/op, from /proc), which other load on the
machine disturbs much less than ops/s.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from raftkv.bench_grpc import KEYS, VALUE, Tally, run_grpc_load
from raftkv.devcluster import free_port

APIS = ("http", "gateway", "grpc")
API_OF = {"raftkv": APIS, "etcd": ("gateway", "grpc")}  # etcd has no /v1 API
OPS = ("put", "get-linearizable", "get-serializable")
T = TypeVar("T")


@dataclass
class Target:
    """One server endpoint and its pre-encoded HTTP/1.1 requests, `KEYS` per operation
    (`bench/<i>`, the gRPC generator's key space), encoded once per run."""

    host: str
    port: int
    requests: dict[str, list[bytes]]


def v1_target(host: str, port: int) -> Target:
    """raftkv's native API: PUT /v1/kv/<key> with the raw value, GET with a query."""

    def put(i: int) -> bytes:
        head = (
            f"PUT /v1/kv/bench/{i} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(VALUE)}\r\n\r\n"
        )
        return head.encode() + VALUE

    def get(i: int, serializable: bool) -> bytes:
        q = "?serializable" if serializable else ""
        return f"GET /v1/kv/bench/{i}{q} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    return Target(host, port, _encode(put, get))


def gateway_target(host: str, port: int) -> Target:
    """etcd's v3 JSON gateway (raftkv's and etcd's): POST /v3/kv/put and /v3/kv/range."""
    b64v = base64.b64encode(VALUE).decode()

    def post(path: str, body: dict[str, object]) -> bytes:
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(data)}\r\n\r\n"
        return head.encode() + data

    def key(i: int) -> str:
        return base64.b64encode(f"bench/{i}".encode()).decode()

    def put(i: int) -> bytes:
        return post("/v3/kv/put", {"key": key(i), "value": b64v})

    def get(i: int, serializable: bool) -> bytes:
        body: dict[str, object] = {"key": key(i)}
        if serializable:
            body["serializable"] = True
        return post("/v3/kv/range", body)

    return Target(host, port, _encode(put, get))


def _encode(
    put: Callable[[int], bytes], get: Callable[[int, bool], bytes]
) -> dict[str, list[bytes]]:
    return {
        "put": [put(i) for i in range(KEYS)],
        "get-linearizable": [get(i, False) for i in range(KEYS)],
        "get-serializable": [get(i, True) for i in range(KEYS)],
    }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def run_load(targets: list[Target], op: str, clients: int, seconds: float) -> Tally:
    """HTTP/1.1: one connection per client, each a closed loop of pre-encoded requests."""
    tally = Tally()
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + seconds

    async def client(n: int) -> None:
        t = targets[n % len(targets)]
        reqs = t.requests[op]
        reader, writer = await asyncio.open_connection(t.host, t.port)
        i = n * 100_003
        try:
            while time.perf_counter() < deadline:
                i += 1
                req = reqs[i % KEYS]
                start = time.perf_counter()
                writer.write(req)
                status = await _read_response(reader)
                if status == 200:
                    tally.ok += 1
                    tally.latencies.append(time.perf_counter() - start)
                else:
                    tally.error(f"HTTP {status}")
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    tally.elapsed = time.perf_counter() - t0
    tally.cpu = time.process_time() - cpu0
    return tally


async def populate(targets: list[Target], keys: int = KEYS, clients: int = 16) -> None:
    """Write every benchmark key once, so reads measure hits, not 404s."""

    async def client(n: int) -> None:
        t = targets[n % len(targets)]
        reader, writer = await asyncio.open_connection(t.host, t.port)
        try:
            for i in range(n, keys, clients):
                writer.write(t.requests["put"][i])
                if await _read_response(reader) != 200:
                    raise RuntimeError(f"populate: put of key {i} failed")
        finally:
            writer.close()

    await asyncio.gather(*(client(n) for n in range(clients)))


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def _wait_http(url: str, ok: Callable[[bytes], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if ok(r.read()):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class Cluster:
    """Three server processes in a temp dir; stops only what it started."""

    def __init__(self, db: str, root: Path) -> None:
        self.db = db
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.clients = [free_port() for _ in range(3)]
        self.peers = [free_port() for _ in range(3)]

    def start(self) -> list[tuple[str, int]]:
        names = [f"n{i + 1}" for i in range(3)]
        peer_urls = [f"http://127.0.0.1:{p}" for p in self.peers]
        initial = ",".join(f"{n}={u}" for n, u in zip(names, peer_urls, strict=True))
        log = open(self.root / "servers.log", "wb")  # noqa: SIM115 - lives with the cluster
        for name, cport, purl in zip(names, self.clients, peer_urls, strict=True):
            curl = f"http://127.0.0.1:{cport}"
            if self.db == "etcd":
                cmd = [
                    "etcd", "--name", name, "--data-dir", str(self.root / name),
                    "--listen-client-urls", curl, "--advertise-client-urls", curl,
                    "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                ]  # fmt: skip
            else:
                cmd = [
                    sys.executable, "-m", "raftkv.cli", "serve", "--name", name,
                    "--data-dir", str(self.root / name), "--client-url", curl,
                    "--peer-url", purl, "--initial-cluster", initial,
                    "--log-level", "warning",
                ]  # fmt: skip
            self.procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        health = "/health"
        for cport in self.clients:
            url = f"http://127.0.0.1:{cport}{health}"
            if not _wait_http(url, lambda b: b"true" in b or b'"ok"' in b, 30):
                raise RuntimeError(f"{self.db} did not become healthy; see {self.root}/servers.log")
        return [("127.0.0.1", p) for p in self.clients]

    def leader_index(self) -> int:
        for i, cport in enumerate(self.clients):
            if self.db == "etcd":
                req = urllib.request.Request(
                    f"http://127.0.0.1:{cport}/v3/maintenance/status", data=b"{}", method="POST"
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    st = json.loads(r.read())
                if st.get("leader") == st["header"]["member_id"]:
                    return i
            else:
                with urllib.request.urlopen(f"http://127.0.0.1:{cport}/v1/status", timeout=2) as r:
                    st = json.loads(r.read())
                if st.get("role") == "leader" or st.get("is_leader"):
                    return i
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU the servers have used so far (/proc/<pid>/stat; 0 where
        there is no /proc). Per operation it is what a face costs the members, which
        other load on the machine disturbs far less than it does ops/s."""
        total = 0
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_async(coro: Coroutine[Any, Any, T], loop: str) -> T:
    if loop == "uvloop":
        import uvloop  # a raftkv dependency; the servers run on it too

        return uvloop.run(coro)
    return asyncio.run(coro)


def make_row(
    db: str, api: str, op: str, clients: int, t: Tally, server_cpu: float
) -> dict[str, object]:
    lat = sorted(t.latencies)
    ops = t.ok + t.errors
    row: dict[str, object] = {
        "db": db,
        "api": api,
        "op": op,
        "clients": clients,
        "ops_per_s": round(t.ok / t.elapsed) if t.elapsed else 0,
        "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
        "errors": t.errors,
        "gen_us_per_op": round(t.cpu * 1e6 / ops, 1) if ops else None,
        "gen_cpu": round(t.cpu / t.elapsed, 2) if t.elapsed else None,
        "server_us_per_op": round(server_cpu * 1e6 / ops, 1) if ops else None,
    }
    if t.first_error is not None:
        row["first_error"] = t.first_error
    return row


def format_row(r: dict[str, object]) -> str:
    line = (
        f"{r['db']:7} {r['api']:7} {r['op']:17} clients={r['clients']:3}  "
        f"{r['ops_per_s']:>7} ops/s  p50 {r['p50_ms']:>7} ms  p99 {r['p99_ms']:>7} ms  "
        f"errors {r['errors']}  gen {r['gen_us_per_op']:>5} us/op {r['gen_cpu']:>4} cpu  "
        f"servers {r['server_us_per_op']:>6} us/op"
    )
    if r["errors"]:
        line += f"  <-- ERRORS, first: {r.get('first_error')}"
    return line


def bench(
    db: str, seconds: float, levels: list[int], target: str, apis: list[str], loop: str
) -> list[dict[str, object]]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{db}-"))
    cluster = Cluster(db, root)
    rows: list[dict[str, object]] = []
    ok = False
    try:
        endpoints = cluster.start()
        if target == "leader":
            endpoints = [endpoints[cluster.leader_index()]]
        http = {
            "http": [v1_target(h, p) for h, p in endpoints],
            "gateway": [gateway_target(h, p) for h, p in endpoints],
        }
        run_async(populate(http["gateway"]), loop)
        for op in OPS:
            for clients in levels:
                for api in apis:  # alternating, so all see the same background load
                    if api == "grpc":
                        coro = run_grpc_load(endpoints, op, clients, seconds)
                    else:
                        coro = run_load(http[api], op, clients, seconds)
                    cpu0 = cluster.cpu_seconds()
                    tally = run_async(coro, loop)
                    row = make_row(db, api, op, clients, tally, cluster.cpu_seconds() - cpu0)
                    rows.append(row)
                    print(format_row(row), flush=True)
        ok = True
    finally:
        cluster.stop()
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"{db}: data and servers.log kept in {root}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raftkv.bench", description=__doc__)
    ap.add_argument("--db", choices=["raftkv", "etcd", "both"], default="raftkv")
    ap.add_argument(
        "--api",
        default="all",
        help="http: raftkv's /v1 API; gateway: etcd's v3 JSON gateway; grpc: etcd's v3 gRPC "
        "API (etcd runs gateway and grpc only); 'all', or several comma-separated",
    )
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument(
        "--target",
        choices=["all", "leader"],
        default="all",
        help="spread clients over all members, or send everything to the leader",
    )
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--json", help="also write the rows to this file")
    a = ap.parse_args(argv)
    levels = [int(c) for c in a.clients.split(",")]
    apis = list(APIS) if a.api == "all" else a.api.split(",")
    if unknown := [x for x in apis if x not in APIS]:
        ap.error(f"--api: unknown {', '.join(unknown)} (choose from {', '.join(APIS)}, all)")
    dbs = ["raftkv", "etcd"] if a.db == "both" else [a.db]
    if "etcd" in dbs and shutil.which("etcd") is None:
        print("etcd not installed (apt-get install etcd-server); skipping it", file=sys.stderr)
        dbs.remove("etcd")
    rows: list[dict[str, object]] = []
    for db in dbs:
        if mine := [api for api in apis if api in API_OF[db]]:
            rows += bench(db, a.seconds, levels, a.target, mine, a.loop)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    bad = [r for r in rows if r["errors"]]
    for r in bad:
        print(
            f"ERRORS: {r['db']} {r['api']} {r['op']} clients={r['clients']}: "
            f"{r['errors']} (first: {r.get('first_error')})",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
