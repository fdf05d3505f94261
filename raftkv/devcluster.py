"""`python -m raftkv.devcluster --nodes 3` (`make run`): a local cluster for development.

Starts N `raftkv serve` subprocesses with data under ./data/<name>, waits until they
agree on a leader, prints the endpoints and a few curl lines, and on Ctrl-C/SIGTERM
sends SIGTERM to each child (the leader hands off leadership) and waits for them.
A second run reuses ./data, so the cluster restarts with its data intact.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_spec(n: int, base_client: int, base_peer: int, host: str = "127.0.0.1") -> list[dict]:
    """n1 2379/2380, n2 12379/12380, n3 22379/22380, ..."""
    return [
        {
            "name": f"n{i + 1}",
            "client_url": f"http://{host}:{base_client + 10000 * i}",
            "peer_url": f"http://{host}:{base_peer + 10000 * i}",
        }
        for i in range(n)
    ]


def start_node(spec: dict, initial: str, data_root: Path, extra: list[str]) -> subprocess.Popen:
    """One `raftkv serve` child with its own process group (so Ctrl-C reaches us only)."""
    cmd = [
        sys.executable,
        "-m",
        "raftkv.cli",
        "serve",
        "--name",
        spec["name"],
        "--data-dir",
        str(data_root / spec["name"]),
        "--client-url",
        spec["client_url"],
        "--peer-url",
        spec["peer_url"],
        "--initial-cluster",
        initial,
        *extra,
    ]
    return subprocess.Popen(cmd, start_new_session=True)


def get_json(url: str, timeout: float = 1.0) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_leader(specs: list[dict], timeout: float = 20.0) -> str | None:
    """The leader's name once every node reports the same one, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leaders = {
            (st or {}).get("leader_name")
            for st in (get_json(s["client_url"] + "/v1/status") for s in specs)
        }
        if len(leaders) == 1 and None not in leaders:
            return leaders.pop()
        time.sleep(0.2)
    return None


def stop_all(procs: list[subprocess.Popen], timeout: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raftkv.devcluster")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--client-port", type=int, default=2379, help="first client port")
    ap.add_argument("--peer-port", type=int, default=2380, help="first peer port")
    a = ap.parse_args(argv)
    specs = cluster_spec(a.nodes, a.client_port, a.peer_port)
    initial = ",".join(f"{s['name']}={s['peer_url']}" for s in specs)
    root = Path(a.data_dir)
    procs = [start_node(s, initial, root, []) for s in specs]
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        leader = wait_leader(specs)
        if leader is None:
            print("no leader elected within 20 s; see the logs above", file=sys.stderr)
        else:
            first = specs[0]["client_url"]
            print(f"\nraftkv dev cluster: {a.nodes} nodes, leader {leader}, data in {root}/")
            for s in specs:
                print(f"  {s['name']}: client {s['client_url']}  peer {s['peer_url']}")
            grpc = ",".join(s["client_url"].removeprefix("http://") for s in specs)
            print(f"  gRPC (etcd v3 API, same ports): {grpc}")
            print("\ntry:")
            print(f"  curl -X PUT {first}/v1/kv/hello -d world")
            print(f"  curl {first}/v1/kv/hello")
            print(f"  curl '{first}/v1/kv/?prefix'")
            print(f"  curl -N '{first}/v1/watch/hello'")
            print(f"  curl {first}/v1/status")
            print(f"  ETCDCTL_API=3 etcdctl --endpoints={grpc} put foo bar")
            print(f"  ETCDCTL_API=3 etcdctl --endpoints={grpc} endpoint status -w table")
            print("\nCtrl-C stops the cluster.\n", flush=True)
        while not stopping and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        stop_all(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
