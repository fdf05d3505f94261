"""A real raftkv cluster of `raftkv serve` subprocesses on 127.0.0.1, for tests.

Ports are ephemeral (picked by binding port 0), data lives in a pytest tmp dir, and
only the processes started here are ever signalled (by their own pid).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raftkv.devcluster import free_port


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@dataclass
class Cluster:
    root: Path
    size: int = 3
    extra_args: list[str] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i in range(self.size):
            name = f"n{i + 1}"
            self.members[name] = Member(name, free_port(), free_port(), self.root / name)
        self.initial = ",".join(
            f"{m.name}=http://127.0.0.1:{m.peer_port}" for m in self.members.values()
        )

    # --- processes -------------------------------------------------------------------
    def add_member(self, name: str) -> Member:
        """Reserve ports and a data dir for a member that will join a running cluster."""
        m = Member(name, free_port(), free_port(), self.root / name)
        self.members[name] = m
        return m

    def join(self, name: str) -> None:
        """Start an added member with `--initial-cluster-state existing` (no bootstrap)."""
        spec = ",".join(
            f"{m.name}=http://127.0.0.1:{m.peer_port}"
            for n, m in self.members.items()
            if n in self.running() or n == name
        )
        self.start(name, extra=["--initial-cluster", spec, "--initial-cluster-state", "existing"])

    def start(
        self, name: str, with_initial_cluster: bool = True, extra: list[str] | None = None
    ) -> None:
        """Start (or restart) a member; a restart needs only its data dir."""
        m = self.members[name]
        m.log = self.root / f"{name}.log"
        cmd = [
            sys.executable,
            "-m",
            "raftkv.cli",
            "serve",
            "--name",
            name,
            "--data-dir",
            str(m.data_dir),
            "--client-url",
            f"http://127.0.0.1:{m.client_port}",
            "--peer-url",
            f"http://127.0.0.1:{m.peer_port}",
            *(["--initial-cluster", self.initial] if with_initial_cluster and not extra else []),
            *(extra or []),
            *self.extra_args,
        ]
        with open(m.log, "ab") as out:
            m.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)

    def start_all(self) -> None:
        for name in self.members:
            self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL: a crash, no graceful shutdown."""
        p = self.members[name].proc
        if p is not None and p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)

    def stop(self, name: str, timeout: float = 15) -> int | None:
        p = self.members[name].proc
        if p is None:
            return None
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(10)
        return p.returncode

    def stop_all(self) -> None:
        for name in self.members:
            self.stop(name)

    def running(self) -> list[str]:
        return [n for n, m in self.members.items() if m.proc and m.proc.poll() is None]

    # --- http ------------------------------------------------------------------------
    def req(
        self,
        name: str,
        method: str,
        path: str,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Reply:
        if isinstance(body, dict | list):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.members[name].client_port, timeout=timeout
        )
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def try_req(self, name: str, method: str, path: str, **kw: Any) -> Reply | None:
        try:
            return self.req(name, method, path, **kw)
        except (OSError, http.client.HTTPException):
            return None

    def status(self, name: str) -> dict[str, Any] | None:
        r = self.try_req(name, "GET", "/v1/status", timeout=2)
        return r.json() if r is not None and r.status == 200 else None

    def wait_leader(self, timeout: float = 45, among: list[str] | None = None) -> str:
        """Name of the leader once every running member agrees on it. (The bound is
        generous: it only matters on a starved machine, and success returns at once.)"""
        names = among or self.running()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = [self.status(n) for n in names]
            leaders = {st.get("leader_name") if st else None for st in sts}
            if len(leaders) == 1 and None not in leaders:
                leader = leaders.pop()
                assert isinstance(leader, str)
                if leader in names:
                    return leader
            time.sleep(0.1)
        raise AssertionError(f"no agreed leader among {names} within {timeout}s")

    def wait_healthy(self, timeout: float = 20) -> None:
        """Until every running member answers /health 200: a member is not ready before
        its own client URL is published through Raft (etcd's publish), which races the
        first election when all members publish at once."""
        deadline = time.monotonic() + timeout
        pending = set(self.running())
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                r = self.try_req(name, "GET", "/health")
                if r is not None and r.status == 200:
                    pending.discard(name)
            if pending:
                time.sleep(0.1)
        assert not pending, f"members not healthy after {timeout}s: {sorted(pending)}"

    def followers(self, leader: str) -> list[str]:
        return [n for n in self.running() if n != leader]

    def wait_applied(self, names: list[str], index: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sts = [self.status(n) for n in names]
            if all(st and st["applied"] >= index for st in sts):
                return
            time.sleep(0.1)
        raise AssertionError(f"{names} did not apply index {index} within {timeout}s")

    def put(self, name: str, key: str, value: str | bytes, query: str = "") -> Reply:
        return self.req(name, "PUT", f"/v1/kv/{key}{query}", body=value)

    def get(self, name: str, key: str, query: str = "") -> Reply:
        return self.req(name, "GET", f"/v1/kv/{key}{query}")

    def logs(self) -> str:
        out = []
        for m in self.members.values():
            if m.log and m.log.exists():
                out.append(f"==== {m.name}\n" + m.log.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def close(self) -> None:
        for m in self.members.values():
            if m.proc is not None and m.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(m.proc.pid, signal.SIGKILL)
                m.proc.wait(10)


@contextlib.contextmanager
def running(c: Cluster) -> Iterator[Cluster]:
    """Start every member, wait for a leader and health, and yield the cluster; print
    the members' logs if starting or the body fails; always stop what was started."""
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
